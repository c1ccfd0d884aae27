"""The delivered event: :class:`Event`, with its CloudEvents attributes, choreo's routing
fields, and decoding of its data."""

from __future__ import annotations

import json
from typing import Any, Optional

from . import _wit
from ._bytes import to_bytes
from .errors import Reject


class Event:
    """One immutable event, as delivered to ``handle``.

    Decoding its data with :meth:`json` or :meth:`text` raises :class:`Reject` when it
    fails: data that does not decode now will not decode on a redelivery either.
    """

    __slots__ = ("raw",)

    def __init__(self, raw: "_wit.types.Event") -> None:
        #: The generated WIT record, for what the accessors do not cover.
        self.raw = raw

    @classmethod
    def for_test(
        cls,
        topic: str,
        data: bytes | str = b"",
        *,
        id: str = "test",
        content_type: Optional[str] = None,
        key: Optional[str] = None,
        reply_to: Optional[str] = None,
        attempt: int = 1,
        extensions: Optional[dict[str, str]] = None,
    ) -> "Event":
        """An event on ``topic`` with placeholder attributes, for unit tests of handler
        logic; choreo builds the real ones."""
        return cls(
            _wit.types.Event(
                id=id,
                source="choreo://test",
                type=topic,
                topic=topic,
                time="1970-01-01T00:00:00Z",
                datacontenttype=content_type,
                subject=None,
                data=to_bytes(data, "the event data"),
                seq=0,
                key=key,
                correlationid=id,
                causationid=None,
                replyto=reply_to,
                attempt=attempt,
                extensions=list((extensions or {}).items()),
            )
        )

    @property
    def id(self) -> str:
        """Unique id of the event (CloudEvents ``id``)."""
        return self.raw.id

    @property
    def source(self) -> str:
        """Who published it, as a URI reference (CloudEvents ``source``)."""
        return self.raw.source

    @property
    def type(self) -> str:
        """What happened (CloudEvents ``type``)."""
        return self.raw.type

    @property
    def topic(self) -> str:
        """The topic it was published on."""
        return self.raw.topic

    @property
    def time(self) -> str:
        """When it was published, RFC 3339 in UTC."""
        return self.raw.time

    @property
    def content_type(self) -> Optional[str]:
        """Media type of the data (CloudEvents ``datacontenttype``), if known."""
        return self.raw.datacontenttype

    @property
    def subject(self) -> Optional[str]:
        """CloudEvents ``subject``."""
        return self.raw.subject

    @property
    def data(self) -> bytes:
        """The payload, exactly as published."""
        return self.raw.data

    @property
    def seq(self) -> int:
        """Position in choreo's log, increasing in publish order."""
        return self.raw.seq

    @property
    def key(self) -> Optional[str]:
        """The ordering key (CloudEvents ``partitionkey``); none means the topic is the key."""
        return self.raw.key

    @property
    def correlation_id(self) -> str:
        """Id of the business transaction the event belongs to."""
        return self.raw.correlationid

    @property
    def causation_id(self) -> Optional[str]:
        """Id of the event whose handling published this one; none if it came from outside."""
        return self.raw.causationid

    @property
    def reply_to(self) -> Optional[str]:
        """The topic on which the publisher waits for a reply; see :func:`choreo_sdk.reply`."""
        return self.raw.replyto

    @property
    def attempt(self) -> int:
        """Which delivery attempt this is: 1 the first time."""
        return self.raw.attempt

    @property
    def extensions(self) -> dict[str, str]:
        """The extension attributes, by name."""
        return dict(self.raw.extensions)

    def extension(self, name: str) -> Optional[str]:
        """The value of the extension attribute ``name``, if present."""
        for n, v in self.raw.extensions:
            if n == name:
                return v
        return None

    def json(self) -> Any:
        """The data decoded as JSON; raises :class:`Reject` naming the event if it is not."""
        try:
            return json.loads(self.raw.data)
        except (ValueError, UnicodeDecodeError) as e:
            raise Reject(f"event {self.id} on {self.topic}: invalid json data: {e}") from e

    def text(self) -> str:
        """The data as UTF-8 text; raises :class:`Reject` naming the event if it is not."""
        try:
            return self.raw.data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Reject(f"event {self.id} on {self.topic}: data is not utf-8: {e}") from e

    def __repr__(self) -> str:
        return f"Event(id={self.id!r}, topic={self.topic!r}, seq={self.seq}, attempt={self.attempt})"
