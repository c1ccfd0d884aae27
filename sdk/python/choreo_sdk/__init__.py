"""Write choreo event handlers in Python.

A handler is a Python module that defines ``describe()`` and ``handle(event)``, and
optionally ``query(request)`` (the default answers 404). ``sdk/python/build.py`` turns it
into a WebAssembly component with componentize-py, targeting the world ``handler`` of
``choreo:handler@0.1.0`` (``wit/handler.wit``)::

    from choreo_sdk import Info, Response, publish_json, state

    def describe():
        return Info("counter", "1.0.0").subscribe("orders.>").publishes("orders.counted")

    def handle(event):
        order = event.json()                      # malformed data: dead-letter the event
        count = state.get_json("count", 0) + 1
        state.set_json("count", count)
        publish_json("orders.counted", {"id": order["id"], "count": count})

    def query(request):
        return Response.json({"count": state.get_json("count", 0)})

Every call runs in a fresh instance, so anything that must outlive one event goes through
:mod:`~choreo_sdk.state`. Raise :class:`Retry` for a transient failure; :class:`Reject` or
any other exception dead-letters the event (see :mod:`choreo_sdk.errors`).

Layout:

- ``info``: :class:`Info`, the answer of ``describe``.
- ``event``: :class:`Event`, the delivered event, with attributes and decoding.
- ``emit``: :func:`publish`, :func:`publish_json`, :func:`reply`, :func:`reply_json`.
- :mod:`~choreo_sdk.state`, :mod:`~choreo_sdk.config`, :mod:`~choreo_sdk.log`: the imports.
- ``query``: :class:`Request` and :class:`Response` for the read side.
- ``errors``: :class:`Retry`, :class:`Reject` and the SDK's exceptions.
- ``world``: the glue componentize-py calls, mapping exceptions to WIT results.
- ``_wit``: the generated bindings, imported in this one place; ``_bytes``: data to bytes.
"""

from . import config, log, state
from .emit import JSON, publish, publish_json, reply, reply_json
from .errors import HandlerError, HttpError, PublishError, Reject, Retry, StateError
from .event import Event
from .info import Info
from .query import Request, Response

__all__ = [
    "JSON",
    "Event",
    "HandlerError",
    "HttpError",
    "Info",
    "PublishError",
    "Reject",
    "Request",
    "Response",
    "Retry",
    "StateError",
    "config",
    "log",
    "publish",
    "publish_json",
    "reply",
    "reply_json",
    "state",
]
