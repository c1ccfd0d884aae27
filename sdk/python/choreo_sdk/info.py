"""What a handler is and what it does: :class:`Info`, the answer of ``describe``."""

from __future__ import annotations

import json
from typing import Any, Iterable

from . import _wit


class Info:
    """The handler's name, version, description, subscriptions, publish patterns and
    schemas. Build it with keywords, with the chainable methods, or both::

        Info("enricher", "1.0.0", description="Adds totals to new orders")
            .subscribe("orders.created")
            .publishes("orders.enriched")
            .schema("orders.enriched", {"type": "object"})

    ``name`` is the handler's identity (its queue, state and dead-letter topic): lower-case
    letters, digits and ``-``, starting with a letter.
    """

    def __init__(
        self,
        name: str,
        version: str,
        *,
        description: str = "",
        subscribe: Iterable[str] = (),
        publishes: Iterable[str] = (),
        schemas: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.description = description
        self.subscriptions: list[str] = list(subscribe)
        self.publish_patterns: list[str] = list(publishes)
        self.schemas: list[tuple[str, str]] = []
        for topic, schema in (schemas or {}).items():
            self.schema(topic, schema)

    def describe(self, description: str) -> "Info":
        """Sets the one line shown in the catalog."""
        self.description = description
        return self

    def subscribe(self, *patterns: str) -> "Info":
        """Receive events whose topic matches a pattern (``*`` one token, ``>`` one or more)."""
        self.subscriptions.extend(patterns)
        return self

    def publishes(self, *patterns: str) -> "Info":
        """Allow publishing to topics matching a pattern; any other publish is refused."""
        self.publish_patterns.extend(patterns)
        return self

    def schema(self, topic: str, schema: Any) -> "Info":
        """Declares the JSON Schema of the data on ``topic``: JSON text, or a value
        (a ``dict``) that is encoded as JSON."""
        text = schema if isinstance(schema, str) else json.dumps(schema, separators=(",", ":"))
        self.schemas.append((topic, text))
        return self

    def to_wit(self) -> "_wit.types.Info":
        """The WIT record handed to choreo."""
        return _wit.types.Info(
            name=self.name,
            version=self.version,
            description=self.description,
            subscriptions=list(self.subscriptions),
            publishes=list(self.publish_patterns),
            schemas=[_wit.types.TopicSchema(topic=t, schema=s) for t, s in self.schemas],
        )

    def __repr__(self) -> str:
        return (
            f"Info(name={self.name!r}, version={self.version!r}, "
            f"subscribe={self.subscriptions!r}, publishes={self.publish_patterns!r})"
        )
