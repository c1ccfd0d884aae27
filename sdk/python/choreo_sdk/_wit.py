"""The one place the SDK touches the bindings componentize-py generates for the world
``handler`` of ``choreo:handler@0.1.0``.

componentize-py writes the ``wit_world`` package (and ``componentize_py_types``) while it
builds a component, so these imports resolve inside a component. Outside one (unit tests),
the same modules come from ``componentize-py bindings``; their import functions raise
``NotImplementedError`` there until a test replaces them.
"""

from componentize_py_types import Err, Ok  # noqa: F401  (re-exported for the SDK)
from wit_world.imports import config, emit, log, state, types  # noqa: F401
