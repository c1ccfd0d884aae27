"""Why a call did not complete, and the exceptions the SDK raises.

The rule, the same as the Rust SDK's: an error that would happen again on a redelivery of
the same event is a *reject* (the event goes to ``$dlq.<handler>`` at once, where an
operator can inspect it and replay it after a fix); only a failure that a later attempt may
not meet is a *retry*. So ``handle`` ends like this:

- it returns: the event is acknowledged;
- it raises :class:`Retry`: the event is delivered again later, with backoff, until the
  handler's maximum number of attempts, then dead-lettered;
- it raises :class:`Reject`: the event is dead-lettered now;
- it raises anything else (a ``KeyError`` on malformed data, a :class:`PublishError` for an
  undeclared topic, a :class:`StateError`, ...): the event is dead-lettered now, with the
  exception's type and message as the reason, since running the same code on the same
  event would raise it again. Raise :class:`Retry` explicitly for what is transient.

Either way, nothing the failed call published or wrote to state is kept.
"""

from __future__ import annotations


class HandlerError(Exception):
    """Base of :class:`Retry` and :class:`Reject`: a failure with a reason to record."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Retry(HandlerError):
    """A transient failure: deliver the event again later."""


class Reject(HandlerError):
    """A permanent failure: dead-letter the event now."""


class PublishError(Exception):
    """A publish that failed.

    ``kind`` is choreo's refusal (``invalid-topic``, ``invalid-event``, ``not-declared``,
    ``too-large``, ``too-many``, ``read-only``, carrying choreo's message), or one of the
    SDK's own: ``no-reply-topic`` (:func:`~choreo_sdk.reply` for an event nobody waits a
    reply for) and ``encode`` (a value that is not JSON-serialisable).
    """

    LABELS = {
        "invalid-topic": "invalid topic",
        "invalid-event": "invalid event",
        "not-declared": "undeclared topic",
        "too-large": "event too large",
        "too-many": "too many publishes",
        "read-only": "read-only call",
        "no-reply-topic": "no reply topic",
        "encode": "cannot encode as json",
    }

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{self.LABELS.get(kind, kind)}: {message}")
        self.kind = kind
        self.message = message


class StateError(Exception):
    """A state operation that failed.

    ``kind`` is choreo's refusal (``invalid-key``, ``too-large``, ``read-only``, carrying
    choreo's message), or one of the SDK's own: ``decode`` (a stored value that is not JSON)
    and ``encode`` (a value that is not JSON-serialisable).
    """

    LABELS = {
        "invalid-key": "invalid state key",
        "too-large": "state value too large",
        "read-only": "read-only call",
        "decode": "state value is not json",
        "encode": "cannot encode the state value as json",
    }

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{self.LABELS.get(kind, kind)}: {message}")
        self.kind = kind
        self.message = message


class HttpError(Exception):
    """Raised in ``query`` to answer with an ``application/problem+json`` error.

    :meth:`Request.json <choreo_sdk.Request.json>` raises it with status 400 for a body that
    is not JSON.
    """

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


def wit_variant_kind(variant: object) -> str:
    """The kebab-case WIT case name of a generated variant value:
    ``PublishError_NotDeclared`` gives ``not-declared``."""
    name = type(variant).__name__.split("_", 1)[-1]
    kind = "".join("-" + c.lower() if c.isupper() else c for c in name)
    return kind.lstrip("-")
