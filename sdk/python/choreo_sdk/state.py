"""The handler's own durable key-value store: raw bytes (:func:`get`, :func:`set`,
:func:`scan`) or JSON (:func:`get_json`, :func:`set_json`, :func:`scan_json`).

Each handler has one keyspace, shared by all its versions and invisible to other handlers.
Writes made in ``handle`` are committed with the delivery's outcome, so a failed call
writes nothing; reads see the committed state plus the call's own writes. In ``query`` and
``describe`` writes raise :class:`~choreo_sdk.StateError` of kind ``read-only``.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator, Optional

from . import _wit
from ._bytes import to_bytes
from .errors import StateError, wit_variant_kind

#: How many entries :func:`scan` asks for per call. choreo may cap it lower; the iterator
#: pages on until a call returns nothing, so the cap only changes the number of calls.
SCAN_PAGE = 256

_Page = list[tuple[str, bytes]]


def _call(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except _wit.Err as e:
        raise StateError(wit_variant_kind(e.value), e.value.value) from None


def get(key: str) -> Optional[bytes]:
    """The raw value under ``key``, or ``None`` when the key is absent."""
    return _call(_wit.state.get, key)


def set(key: str, value: bytes | str) -> None:
    """Stores ``value`` (bytes, or text encoded as UTF-8) under ``key``."""
    _call(_wit.state.set, key, to_bytes(value, "a state value"))


def delete(key: str) -> None:
    """Removes ``key``; removing a missing key is not an error."""
    _call(_wit.state.delete, key)


def get_json(key: str, default: Any = None) -> Any:
    """The value under ``key`` decoded from JSON, or ``default`` when the key is absent."""
    data = get(key)
    if data is None:
        return default
    return _decode(key, data)


def set_json(key: str, value: Any) -> None:
    """Stores ``value`` encoded as JSON under ``key``."""
    try:
        data = json.dumps(value, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise StateError("encode", f"key {key}: {e}") from e
    set(key, data)


def scan(prefix: str = "") -> Iterator[tuple[str, bytes]]:
    """Every ``(key, value)`` whose key starts with ``prefix``, in key order, asking
    choreo for :data:`SCAN_PAGE` entries at a time."""
    return _scan(prefix, lambda after: _call(_wit.state.scan, prefix, after, SCAN_PAGE))


def scan_json(prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every ``(key, value)`` whose key starts with ``prefix``, values decoded from JSON."""
    for key, data in scan(prefix):
        yield key, _decode(key, data)


def _scan(prefix: str, fetch: Callable[[Optional[str]], _Page]) -> Iterator[tuple[str, bytes]]:
    after: Optional[str] = None
    while True:
        # A short page does not mean the end: choreo may cap the limit below what we ask,
        # so only an empty page does. Keys not past the last one seen are dropped, so a
        # page that does not move forward ends the scan instead of looping.
        page = [(k, v) for k, v in fetch(after) if after is None or k > after]
        if not page:
            return
        for key, value in page:
            after = key
            yield key, value


def _decode(key: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise StateError("decode", f"key {key}: {e}") from e
