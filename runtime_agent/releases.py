"""Publishing and retiring function versions on this host: the snapshot of LATEST goes into the version store
(``state.versions``) and gets an instance pool of its own; a deleted version's pool drains and its code is
collected once nothing else uses it. Aliases need no pool: they only steer ``QualifierResolver``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import BadRequest
from .state.versions import VersionRecord

if TYPE_CHECKING:  # the facade composes this object; it never imports the facade at run time
    from .service import Agent


class Releases:
    def __init__(self, agent: "Agent") -> None:
        self._agent = agent

    def publish(self, name: str, body: dict[str, Any]) -> VersionRecord:
        """Snapshots LATEST as a new version (``version_id`` names it, else the next id)."""
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object: {\"description\": ..., \"version_id\": ...}")
        latest = self._agent.get_function(name)
        version = self._agent.versions.publish(name, latest.spec, latest.code_checksum,
                                               body.get("description") or "", body.get("version_id"))
        self._agent.open_pool(version.as_function())
        return version

    def delete(self, name: str, version_id: str) -> None:
        version = self._agent.versions.delete(name, version_id)
        self._agent.close_pool(f"{name}:{version.version_id}")
        self._agent.collect_code()
