"""Control routes of layer versions (bearer token, like every control route), after FC's
``/2023-03-30/layers/{name}/versions`` paths. The package is uploaded first, content-addressed, like code.

- ``GET /v1/layers``: every layer version registered on this host.
- ``GET /v1/layers/{name}/versions/next``: the version the next publish would get (the provider takes the maximum
  over the fleet's hosts).
- ``PUT /v1/layers/{name}/versions/{n}`` {code_checksum, code_size, compatible_runtime, description, license}.
- ``GET|DELETE /v1/layers/{name}/versions/{n}``.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from ..errors import NotFound
from ..service import Agent

_LAYERS = re.compile(r"^/v1/layers$")
_LAYER_VERSION = re.compile(r"^/v1/layers/([^/]+)/versions/([^/]+)$")


def route(agent: Agent, method: str, path: str, body: Callable[[], Any]) -> tuple[int, Any] | None:
    """(status, JSON payload or None for no body) when ``path`` is a layer route, else None."""
    if _LAYERS.match(path):
        if method == "GET":
            return 200, {"layers": [r.to_json() for r in agent.layers.list()]}
    elif m := _LAYER_VERSION.match(path):
        name, version = m.groups()
        if method == "GET" and version == "next":
            return 200, {"version": agent.layers.next_version(name)}
        if method == "GET":
            return 200, agent.layers.get(name, version).to_json()
        if method == "PUT":
            return 200, agent.layers.register(name, version, body()).to_json()
        if method == "DELETE":
            agent.layers.delete(name, version)
            agent.collect_code()
            return 204, None
    else:
        return None
    raise NotFound(f"no route {method} {path}", code="NotFound")
