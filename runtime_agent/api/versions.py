"""Control routes of versions and aliases (bearer token, like every control route), shaped after FC's
``/2023-03-30/functions/{name}/versions|aliases`` paths:

- ``POST /v1/functions/{name}/versions`` {description, version_id?}: publish LATEST; ``GET`` lists them.
- ``GET|DELETE /v1/functions/{name}/versions/{id}``: a delete is refused (409 VersionInUse) while an alias uses it.
- ``GET /v1/functions/{name}/aliases``; ``GET|PUT|DELETE /v1/functions/{name}/aliases/{alias}`` with
  {version_id, additional_version_weight, description} (PUT creates or updates in place).
- ``GET /v1/functions/{name}/versions/next``: the id the next publish would get (the provider takes the maximum over
  a function's hosts, so every host gives the version the same id).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from ..errors import NotFound
from ..service import Agent

_VERSIONS = re.compile(r"^/v1/functions/([^/]+)/versions$")
_VERSION = re.compile(r"^/v1/functions/([^/]+)/versions/([^/]+)$")
_ALIASES = re.compile(r"^/v1/functions/([^/]+)/aliases$")
_ALIAS = re.compile(r"^/v1/functions/([^/]+)/aliases/([^/]+)$")


def route(agent: Agent, method: str, path: str, body: Callable[[], Any]) -> tuple[int, Any] | None:
    """(status, JSON payload or None for no body) when ``path`` is a version or alias route, else None."""
    if m := _VERSIONS.match(path):
        name = m.group(1)
        agent.get_function(name)  # FunctionNotFound first
        if method == "POST":
            return 200, agent.releases.publish(name, body()).to_json()
        if method == "GET":
            return 200, {"versions": [v.to_json() for v in agent.versions.list(name)]}
    elif m := _VERSION.match(path):
        name, version = m.groups()
        agent.get_function(name)
        if method == "GET" and version == "next":
            return 200, {"version_id": str(agent.versions.last_id(name) + 1)}
        if method == "GET":
            return 200, agent.versions.get(name, version).to_json()
        if method == "DELETE":
            agent.releases.delete(name, version)
            return 204, None
    elif m := _ALIASES.match(path):
        agent.get_function(m.group(1))
        if method == "GET":
            return 200, {"aliases": [a.to_json() for a in agent.versions.list_aliases(m.group(1))]}
    elif m := _ALIAS.match(path):
        name, alias = m.groups()
        agent.get_function(name)
        if method == "GET":
            return 200, agent.versions.get_alias(name, alias).to_json()
        if method == "PUT":
            return 200, agent.versions.put_alias(name, alias, body()).to_json()
        if method == "DELETE":
            agent.versions.delete_alias(name, alias)
            return 204, None
    else:
        return None
    raise NotFound(f"no route {method} {path}", code="NotFound")
