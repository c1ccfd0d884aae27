"""Values from the handler's manifest (``<name>.toml`` beside the component, table
``[config]``). Read-only, available in every call."""

from __future__ import annotations

from typing import Optional

from . import _wit


def get(key: str, default: Optional[str] = None) -> Optional[str]:
    """The configured value for ``key``, or ``default`` when there is none."""
    value = _wit.config.get(key)
    return default if value is None else value


def get_all() -> dict[str, str]:
    """Every configured key and value."""
    return dict(_wit.config.get_all())
