"""Structured logging into choreo's log, tagged with the handler name and the event id.

Prefer these over ``print``: stdout and stderr are captured too, but lose the level.
choreo cuts lines longer than the handler's log line limit.
"""

from __future__ import annotations

from . import _wit


def write(level: str, message: str) -> None:
    """Writes one line at ``level``: ``trace``, ``debug``, ``info``, ``warn`` or ``error``."""
    try:
        wit_level = _wit.log.Level[level.upper()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}") from None
    _wit.log.write(wit_level, str(message))


def trace(message: str) -> None:
    """Writes one line at trace level."""
    write("trace", message)


def debug(message: str) -> None:
    """Writes one line at debug level."""
    write("debug", message)


def info(message: str) -> None:
    """Writes one line at info level."""
    write("info", message)


def warn(message: str) -> None:
    """Writes one line at warn level."""
    write("warn", message)


def error(message: str) -> None:
    """Writes one line at error level."""
    write("error", message)
