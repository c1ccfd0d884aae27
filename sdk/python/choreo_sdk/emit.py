"""Publishing from inside ``handle``: :func:`publish`, :func:`publish_json`, and the reply
shorthands :func:`reply` and :func:`reply_json`.

What a call publishes is buffered by choreo and becomes visible only if the call succeeds;
it carries the handled event's correlation id and has it as causation id. Every refusal
raises :class:`~choreo_sdk.PublishError`, which, left uncaught in ``handle``, dead-letters
the event (it would be refused again on a redelivery).
"""

from __future__ import annotations

import json
from typing import Any, Optional

from . import _wit
from ._bytes import to_bytes
from .errors import PublishError, wit_variant_kind
from .event import Event

#: The media type :func:`publish_json` and :func:`reply_json` set.
JSON = "application/json"


def publish(
    topic: str,
    data: bytes | str = b"",
    *,
    type: Optional[str] = None,
    content_type: Optional[str] = None,
    key: Optional[str] = None,
    subject: Optional[str] = None,
    extensions: Optional[dict[str, str]] = None,
) -> str:
    """Publishes ``data`` (bytes, or text encoded as UTF-8) on ``topic`` and returns the id
    choreo gave the event.

    ``type`` is the CloudEvents type (the topic when none), ``key`` the ordering key for
    consumers, ``extensions`` extension attributes (names: lower-case ASCII letters and
    digits).
    """
    outgoing = _wit.types.Outgoing(
        topic=topic,
        type=type,
        datacontenttype=content_type,
        key=key,
        subject=subject,
        data=to_bytes(data, "the data to publish"),
        extensions=list((extensions or {}).items()),
    )
    try:
        return _wit.emit.publish(outgoing)
    except _wit.Err as e:
        raise PublishError(wit_variant_kind(e.value), e.value.value) from None


def publish_json(topic: str, value: Any, **attributes: Any) -> str:
    """Publishes ``value`` encoded as JSON on ``topic``, with media type
    ``application/json``; takes the same keyword attributes as :func:`publish`."""
    attributes.setdefault("content_type", JSON)
    return publish(topic, _encode(topic, value), **attributes)


def reply(event: Event, data: bytes | str = b"", **attributes: Any) -> str:
    """Publishes ``data`` on the reply topic of ``event``, answering a request-reply
    publisher (``POST /v1/topics/...?reply=wait``)."""
    return publish(_reply_topic(event), data, **attributes)


def reply_json(event: Event, value: Any, **attributes: Any) -> str:
    """Publishes ``value`` as JSON on the reply topic of ``event``."""
    topic = _reply_topic(event)
    attributes.setdefault("content_type", JSON)
    return publish(topic, _encode(topic, value), **attributes)


def _reply_topic(event: Event) -> str:
    if event.reply_to is None:
        raise PublishError(
            "no-reply-topic",
            f"event {event.id} has no reply topic: its publisher does not wait for a reply",
        )
    return event.reply_to


def _encode(topic: str, value: Any) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise PublishError("encode", f"the data for {topic}: {e}") from e
