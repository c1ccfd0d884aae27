"""The one conversion from what handlers pass as data (bytes or text) to the bytes the WIT
interface carries."""

from __future__ import annotations

from typing import Any


def to_bytes(data: Any, what: str) -> bytes:
    """``data`` as bytes: bytes-like values as they are, text encoded as UTF-8. Anything
    else is a ``TypeError`` naming ``what`` and the ``*_json`` variant to use instead."""
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{what} must be bytes or str, not {type(data).__name__}; use the _json variant for other values")
