"""The glue between a handler module and the export protocol componentize-py generates.

componentize-py looks for a class named ``WitWorld`` in the module it builds, with one
method per export of the world. :func:`world_for` makes that class for a handler module
that defines ``describe()``, ``handle(event)`` and optionally ``query(request)``; the build
script (``sdk/python/build.py``) generates the two-line entry module that calls it. This is
where exceptions become WIT results, so every handler gets the same error mapping (see
:mod:`choreo_sdk.errors`).
"""

from __future__ import annotations

import traceback
from types import ModuleType
from typing import Any, Callable

from . import _wit, log
from .errors import HandlerError, HttpError, Retry
from .event import Event
from .info import Info
from .query import Request, Response


def handle_error(error: BaseException) -> Any:
    """The WIT ``handle-error`` for an exception raised by ``handle``: :class:`Retry` is a
    retry; :class:`Reject` and every other exception a reject."""
    if isinstance(error, Retry):
        return _wit.types.HandleError_Retry(error.message)
    if isinstance(error, HandlerError):
        return _wit.types.HandleError_Reject(error.message)
    return _wit.types.HandleError_Reject(f"{type(error).__name__}: {error}")


def world_for(module: ModuleType) -> type:
    """The ``WitWorld`` class for the handler defined by ``module``.

    Fails at build time (the entry module is imported while componentize-py builds the
    component) when ``describe`` or ``handle`` is missing.
    """
    name = getattr(module, "__name__", "handler")
    describe = _required(module, name, "describe")
    handle = _required(module, name, "handle")
    query = getattr(module, "query", None)
    if query is not None and not callable(query):
        raise TypeError(f"{name}.query must be a function taking a Request")

    class WitWorld:
        def describe(self) -> Any:
            info = describe()
            if not isinstance(info, Info):
                raise TypeError(f"{name}.describe() returned {type(info).__name__}, not Info")
            return info.to_wit()

        def handle(self, event: Any) -> None:
            try:
                handle(Event(event))
            except Exception as error:
                if not isinstance(error, HandlerError):
                    # An unexpected exception: say where it came from, since the reason
                    # recorded with the dead-letter only carries its type and message.
                    log.error(f"handle raised {type(error).__name__}:\n{traceback.format_exc()}")
                raise _wit.Err(handle_error(error)) from None

        def query(self, request: Any) -> Any:
            if query is None:
                return Response.not_found().to_wit()
            try:
                response = query(Request(request))
            except HttpError as error:
                response = Response.problem(error.status, error.detail)
            except Exception as error:
                log.error(f"query raised {type(error).__name__}:\n{traceback.format_exc()}")
                response = Response.problem(500, f"{type(error).__name__}: {error}")
            if not isinstance(response, Response):
                response = Response.problem(
                    500, f"{name}.query returned {type(response).__name__}, not Response"
                )
            return response.to_wit()

    WitWorld.__qualname__ = WitWorld.__name__ = "WitWorld"
    return WitWorld


def _required(module: ModuleType, name: str, function: str) -> Callable[..., Any]:
    value = getattr(module, function, None)
    if not callable(value):
        raise TypeError(f"the handler module {name} must define a function {function}()")
    return value
