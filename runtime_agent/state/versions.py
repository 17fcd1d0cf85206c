"""Versions and aliases of functions, in SQLite and mirrored in memory, and the resolution of a qualifier.

- A **version** is an immutable snapshot of a function's spec as LATEST held it when it was published: code
  checksum, configuration, layers. Ids are integers per function, increasing and never reused: the last id given
  out is kept even after the version, or the function, is deleted. The provider may name the id (it picks one id
  for every host of a function); an id at or below the last one given out is refused.
- An **alias** names one version and may send a share (0-1) of invocations to one additional version.
- ``QualifierResolver`` turns ``LATEST``, a version id or an alias name into the version that serves an invocation.
  It reads the in-memory mirror only: the warm path never touches SQLite.

Writes are rare (a deploy); readers on other threads see whole records replaced, never one half-written.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadRequest, Conflict, NotFound
from .store import FunctionRecord

LATEST = "LATEST"
# FC's alias rule: letters, digits, '_' and '-', not starting with a digit or '-', 1-128 characters, not LATEST.
ALIAS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    function TEXT NOT NULL,
    version_id INTEGER NOT NULL,
    spec TEXT NOT NULL,
    code_checksum TEXT NOT NULL,
    description TEXT NOT NULL,
    created_time REAL NOT NULL,
    PRIMARY KEY (function, version_id)
);
CREATE TABLE IF NOT EXISTS version_counters (
    function TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS aliases (
    function TEXT NOT NULL,
    name TEXT NOT NULL,
    version_id TEXT NOT NULL,
    weights TEXT NOT NULL,
    description TEXT NOT NULL,
    created_time REAL NOT NULL,
    last_modified_time REAL NOT NULL,
    PRIMARY KEY (function, name)
);
"""


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass(frozen=True)
class VersionRecord:
    function: str
    version_id: int
    spec: dict[str, Any]
    code_checksum: str | None
    description: str
    created_time: float

    def as_function(self) -> FunctionRecord:
        """The record the version's instance pool runs."""
        return FunctionRecord(self.function, self.spec, self.code_checksum, self.created_time, self.created_time,
                              version=str(self.version_id))

    def to_json(self) -> dict[str, Any]:
        return {"function_name": self.function, "version_id": str(self.version_id), "description": self.description,
                "code_checksum": self.code_checksum, "runtime": self.spec.get("runtime"),
                "layers": self.spec.get("layers") or [], "created_time": _iso(self.created_time),
                "last_modified_time": _iso(self.created_time)}


@dataclass(frozen=True)
class AliasRecord:
    function: str
    name: str
    version_id: str
    additional_version_weight: dict[str, float]
    description: str
    created_time: float
    last_modified_time: float
    # Resolution, precomputed: (extra version, its weight) or None.
    extra: tuple[str, float] | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"function_name": self.function, "alias_name": self.name, "version_id": self.version_id,
                "additional_version_weight": dict(self.additional_version_weight), "description": self.description,
                "created_time": _iso(self.created_time), "last_modified_time": _iso(self.last_modified_time)}


def _version_number(value: Any, what: str) -> int:
    text = str(value)
    if not text.isdigit() or int(text) < 1:
        raise BadRequest(f"{what} must be a published version id (an integer from 1), got {value!r}")
    return int(text)


class Versions:
    """The versions and aliases of every function on this host."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._versions: dict[str, dict[int, VersionRecord]] = {}
        self._aliases: dict[str, dict[str, AliasRecord]] = {}
        for row in self._db.execute("SELECT * FROM versions"):
            rec = VersionRecord(row[0], row[1], json.loads(row[2]), row[3] or None, row[4], row[5])
            self._versions.setdefault(rec.function, {})[rec.version_id] = rec
        for row in self._db.execute("SELECT * FROM aliases"):
            rec = _alias(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6])
            self._aliases.setdefault(rec.function, {})[rec.name] = rec

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # versions -------------------------------------------------------------------------------------------------
    def last_id(self, function: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT last_id FROM version_counters WHERE function=?", (function,)).fetchone()
        return int(row[0]) if row else 0

    def publish(self, function: str, spec: dict[str, Any], code_checksum: str | None, description: str,
                version_id: Any = None) -> VersionRecord:
        if not isinstance(description, str) or len(description) > 256:
            raise BadRequest("description must be a string of at most 256 characters")
        now = time.time()
        with self._lock:
            row = self._db.execute("SELECT last_id FROM version_counters WHERE function=?", (function,)).fetchone()
            last = int(row[0]) if row else 0
            if version_id is None:
                number = last + 1
            else:
                number = _version_number(version_id, "version_id")
                if number <= last:
                    raise Conflict(f"version_id {number} of function {function} was already given out (the last "
                                   f"is {last}); version ids are never reused", code="VersionIdTaken")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR REPLACE INTO version_counters VALUES (?,?)", (function, number))
                self._db.execute("INSERT INTO versions VALUES (?,?,?,?,?,?)",
                                 (function, number, json.dumps(spec, sort_keys=True), code_checksum or "",
                                  description, now))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            snapshot = json.loads(json.dumps(spec))  # a copy: LATEST's spec moves on, the version never does
            rec = VersionRecord(function, number, snapshot, code_checksum, description, now)
            self._versions[function] = {**self._versions.get(function, {}), number: rec}
        return rec

    def get(self, function: str, version_id: Any) -> VersionRecord:
        text = str(version_id)
        rec = self._versions.get(function, {}).get(int(text)) if text.isdigit() else None
        if rec is None:
            raise NotFound(f"version {version_id} of function {function} does not exist", code="VersionNotFound")
        return rec

    def list(self, function: str) -> list[VersionRecord]:
        return [v for _, v in sorted(self._versions.get(function, {}).items())]

    def all(self) -> list[VersionRecord]:
        return [v for versions in list(self._versions.values()) for v in versions.values()]

    def delete(self, function: str, version_id: Any) -> VersionRecord:
        """Refuses while an alias points at the version (as its version or its additional version)."""
        rec = self.get(function, version_id)
        users = sorted(a.name for a in self._aliases.get(function, {}).values()
                       if a.version_id == str(rec.version_id) or str(rec.version_id) in a.additional_version_weight)
        if users:
            raise Conflict(f"version {rec.version_id} of function {function} is used by alias "
                           f"{', '.join(users)}; point the alias at another version (or delete it) first",
                           code="VersionInUse")
        with self._lock:
            self._db.execute("DELETE FROM versions WHERE function=? AND version_id=?", (function, rec.version_id))
            versions = dict(self._versions.get(function, {}))
            versions.pop(rec.version_id, None)
            self._versions[function] = versions
        return rec

    def drop_function(self, function: str) -> list[VersionRecord]:
        """Removes a deleted function's versions and aliases; its counter stays, so ids are never reused."""
        with self._lock:
            self._db.execute("DELETE FROM versions WHERE function=?", (function,))
            self._db.execute("DELETE FROM aliases WHERE function=?", (function,))
            gone = list(self._versions.pop(function, {}).values())
            self._aliases.pop(function, None)
        return gone

    # aliases --------------------------------------------------------------------------------------------------
    def put_alias(self, function: str, name: str, body: dict[str, Any]) -> AliasRecord:
        """Creates or updates an alias; every rule is checked before anything changes."""
        if not ALIAS_NAME.match(name) or name == LATEST:
            raise BadRequest(f"alias_name {name!r} must be 1-128 letters, digits, '_' or '-', not starting with a "
                             "digit or '-', and not LATEST")
        version = self.get(function, _version_number(body.get("version_id"), "version_id"))
        weights = body.get("additional_version_weight") or {}
        if not isinstance(weights, dict):
            raise BadRequest("additional_version_weight must be a map of one version id to a weight, e.g. {\"3\": 0.1}")
        if len(weights) > 1:
            raise BadRequest(f"additional_version_weight names {len(weights)} versions; an alias sends traffic to at "
                             "most one additional version")
        clean: dict[str, float] = {}
        for key, weight in weights.items():
            extra = self.get(function, _version_number(key, "additional_version_weight key"))
            if extra.version_id == version.version_id:
                raise BadRequest(f"additional_version_weight must not name the alias's own version "
                                 f"{version.version_id}", code="AdditionalVersionContainsMajorVersion")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
                raise BadRequest(f"additional_version_weight of version {key} must be a number from 0 to 1, "
                                 f"got {weight!r}")
            clean[str(extra.version_id)] = float(weight)
        description = body.get("description") or ""
        if not isinstance(description, str) or len(description) > 256:
            raise BadRequest("description must be a string of at most 256 characters")
        now = time.time()
        with self._lock:
            old = self._aliases.get(function, {}).get(name)
            created = old.created_time if old else now
            self._db.execute("INSERT OR REPLACE INTO aliases VALUES (?,?,?,?,?,?,?)",
                             (function, name, str(version.version_id), json.dumps(clean), description, created, now))
            rec = _alias(function, name, str(version.version_id), clean, description, created, now)
            self._aliases[function] = {**self._aliases.get(function, {}), name: rec}
        return rec

    def get_alias(self, function: str, name: str) -> AliasRecord:
        rec = self._aliases.get(function, {}).get(name)
        if rec is None:
            raise NotFound(f"alias {name} of function {function} does not exist", code="AliasNotFound")
        return rec

    def list_aliases(self, function: str) -> list[AliasRecord]:
        return [a for _, a in sorted(self._aliases.get(function, {}).items())]

    def delete_alias(self, function: str, name: str) -> None:
        self.get_alias(function, name)
        with self._lock:
            self._db.execute("DELETE FROM aliases WHERE function=? AND name=?", (function, name))
            aliases = dict(self._aliases.get(function, {}))
            aliases.pop(name, None)
            self._aliases[function] = aliases

    def alias_record(self, function: str, name: str) -> AliasRecord | None:
        """The alias, or None: the invoke path's lookup, from memory."""
        aliases = self._aliases.get(function)
        return aliases.get(name) if aliases else None

    def has_version(self, function: str, number: int) -> bool:
        versions = self._versions.get(function)
        return bool(versions) and number in versions


def _alias(function: str, name: str, version_id: str, weights: dict[str, float], description: str, created: float,
           modified: float) -> AliasRecord:
    extra = next(((v, float(w)) for v, w in weights.items() if w > 0), None)
    return AliasRecord(function, name, version_id, dict(weights), description, created, modified, extra)


class QualifierResolver:
    """``LATEST`` (or nothing), a version id, or an alias name, to the version that serves one invocation: LATEST or
    a version id (as a string). An alias with an additional version sends each invocation there with probability
    equal to its weight, by an independent draw of ``rng`` (seed it to make a run reproducible). Unknown
    qualifiers raise FC's not-found errors (VersionNotFound, AliasNotFound)."""

    def __init__(self, versions: Versions, rng: random.Random | None = None) -> None:
        self._versions = versions
        self._random = (rng or random.Random()).random

    def check(self, function: str, qualifier: str | None) -> None:
        """Raises FC's not-found error unless ``qualifier`` names something of ``function`` now; draws nothing
        (for callers that store a qualifier to invoke later, such as a trigger)."""
        if qualifier and qualifier != LATEST and not qualifier.isdigit():
            if self._versions.alias_record(function, qualifier) is None:
                raise NotFound(f"alias {qualifier} of function {function} does not exist", code="AliasNotFound")
        else:
            self.resolve(function, qualifier)

    def resolve(self, function: str, qualifier: str | None) -> str:
        """The version that serves one invocation: LATEST or a version id. An alias draws its split here."""
        if not qualifier or qualifier == LATEST:
            return LATEST
        if qualifier.isdigit():
            if not self._versions.has_version(function, int(qualifier)):
                raise NotFound(f"version {qualifier} of function {function} does not exist", code="VersionNotFound")
            return str(int(qualifier))
        alias = self._versions.alias_record(function, qualifier)
        if alias is None:
            raise NotFound(f"alias {qualifier} of function {function} does not exist", code="AliasNotFound")
        if alias.extra is not None and self._random() < alias.extra[1]:
            return alias.extra[0]
        return alias.version_id

    def check_provisioned(self, function: str, qualifier: str) -> None:
        """FC binds a provision config to LATEST or an alias, never to a version directly (PutProvisionConfig's
        qualifier is "the function alias or LATEST"; auto scaling "applies only at the alias level"). Raises the
        error naming ``qualifier`` otherwise."""
        if qualifier == LATEST:
            return
        if qualifier.isdigit():
            raise BadRequest(f"qualifier: {qualifier} is a version id; FC provisions LATEST or an alias, not a version "
                             f"directly: point an alias at version {qualifier} and provision the alias")
        if not ALIAS_NAME.match(qualifier):
            raise BadRequest(f"qualifier: {qualifier!r} is neither LATEST nor an alias name (letters, digits, '_' and "
                             "'-', not starting with a digit or '-', 1-128 characters)")
        if self._versions.alias_record(function, qualifier) is None:
            raise NotFound(f"qualifier: alias {qualifier} of function {function} does not exist", code="AliasNotFound")

    def provisioned_version(self, function: str, qualifier: str) -> str | None:
        """The version whose pool keeps a provision config's instances: LATEST's, or the alias's main version (the
        canary's additional version, if any, serves its share elastically); None when the alias is gone."""
        if qualifier == LATEST:
            return LATEST
        alias = self._versions.alias_record(function, qualifier)
        return alias.version_id if alias else None
