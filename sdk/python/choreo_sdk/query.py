"""The read side: :class:`Request` as routed to a handler's ``query``, and
:class:`Response`, whose errors are ``application/problem+json`` like the rest of choreo."""

from __future__ import annotations

import json
from typing import Any, Optional

from . import _wit
from ._bytes import to_bytes
from .errors import HttpError

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Request:
    """A read-side request: ``GET|POST /v1/query/<handler><path>``."""

    __slots__ = ("raw",)

    def __init__(self, raw: "_wit.types.Request") -> None:
        #: The generated WIT record.
        self.raw = raw

    @classmethod
    def for_test(cls, method: str, path: str, query: str = "", body: bytes = b"") -> "Request":
        """A request with ``method`` and ``path``; meant for unit tests."""
        return cls(_wit.types.Request(method=method, path=path, query=query, headers=[], body=body))

    @property
    def method(self) -> str:
        """The HTTP method, upper case: ``GET`` or ``POST``."""
        return self.raw.method

    @property
    def path(self) -> str:
        """The path after ``/v1/query/<handler>``, starting with ``/``."""
        return self.raw.path

    @property
    def segments(self) -> list[str]:
        """The non-empty segments of the path, as sent: ``/counts/a.b/`` gives
        ``["counts", "a.b"]``. Handy with ``match``."""
        return [s for s in self.raw.path.split("/") if s]

    @property
    def query(self) -> str:
        """The raw query string without the leading ``?``; empty when there is none."""
        return self.raw.query

    def query_param(self, name: str) -> Optional[str]:
        """The first value of query parameter ``name``, as sent (not percent-decoded)."""
        for pair in self.raw.query.split("&"):
            n, sep, v = pair.partition("=")
            if n == name:
                return v if sep else ""
        return None

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The request headers, names in lower case."""
        return self.raw.headers

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name`` (compared case-insensitively)."""
        name = name.lower()
        for n, v in self.raw.headers:
            if n.lower() == name:
                return v
        return None

    @property
    def body(self) -> bytes:
        """The body (empty for ``GET``)."""
        return self.raw.body

    def json(self) -> Any:
        """The body decoded as JSON; raises :class:`HttpError` 400 when it is not."""
        try:
            return json.loads(self.raw.body)
        except (ValueError, UnicodeDecodeError) as e:
            raise HttpError(400, f"invalid json body: {e}") from e


class Response:
    """The answer to a :class:`Request`, sent to the HTTP client as is."""

    __slots__ = ("status", "headers", "body")

    def __init__(
        self,
        status: int = 200,
        body: bytes | str = b"",
        headers: Optional[list[tuple[str, str]]] = None,
    ) -> None:
        self.status = status
        self.headers: list[tuple[str, str]] = list(headers or [])
        self.body = to_bytes(body, "a response body")

    @classmethod
    def json(cls, value: Any, status: int = 200) -> "Response":
        """``value`` as JSON; a 500 problem if it cannot be encoded."""
        try:
            body = json.dumps(value, separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError) as e:
            return cls.problem(500, f"cannot encode the response as json: {e}")
        return cls(status, body, [("content-type", "application/json")])

    @classmethod
    def text(cls, text: str, status: int = 200) -> "Response":
        """``text`` as ``text/plain; charset=utf-8``."""
        return cls(status, text, [("content-type", "text/plain; charset=utf-8")])

    @classmethod
    def problem(cls, status: int, detail: str) -> "Response":
        """An ``application/problem+json`` error (RFC 9457) with a ``detail`` a person can
        act on."""
        document = {
            "type": "about:blank",
            "title": _REASONS.get(status, "Error"),
            "status": status,
            "detail": detail,
        }
        return cls(status, json.dumps(document), [("content-type", "application/problem+json")])

    @classmethod
    def not_found(cls) -> "Response":
        """A 404 problem: the default answer of ``query``."""
        return cls.problem(404, "this handler has nothing at this path")

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name`` (compared case-insensitively)."""
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return None

    def to_wit(self) -> "_wit.types.Response":
        """The WIT record handed to choreo."""
        return _wit.types.Response(status=self.status, headers=list(self.headers), body=self.body)

    def __repr__(self) -> str:
        return f"Response(status={self.status}, body={self.body[:64]!r})"
