"""Layer versions on this host: the registry (SQLite) of FC's ``layers/{name}/versions/{n}``, each naming a
package in the content-addressed code store (uploaded once per host whatever uses it), and the merged ``/opt``
trees instances mount read-only.

A function's layers merge into one tree per ordered list of packages (``layers/merged/<key>/``, files hard-linked
from the unpacked packages, so a merge costs no copy): the last-listed layer is laid down first and each earlier
one over it, so on a name clash **the first-listed layer wins** (FC's rule). A package stays on the host while a
registered layer version, a function or a published version uses it; a deleted layer version keeps working for
the functions that already use it, as on FC and Lambda, but new deploys cannot name it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from fc_common import arns

from ..errors import BadRequest, Conflict, NotFound
from .codestore import CodeStore

MAX_LAYERS = 5
LAYER_NAME = re.compile(rf"^{arns.LAYER_NAME}$")
MERGED_DIR = "merged"  # <layers root>/merged/<key>/: the merged trees (stem cells bind them from a view of it)
RUNTIME_MOUNTPOINT = "fc-runtime"  # /opt/fc-runtime: the built-in runtime is mounted over the merged /opt

SCHEMA = """
CREATE TABLE IF NOT EXISTS layer_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS layer_counters (
    name TEXT PRIMARY KEY,
    last_version INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class LayerRecord:
    name: str
    version: int
    code_checksum: str
    code_size: int
    compatible_runtime: tuple[str, ...]
    description: str
    license: str
    create_time: float

    def to_json(self) -> dict[str, Any]:
        return {"layer_name": self.name, "version": self.version,
                "layer_version_arn": arns.layer_arn(self.name, self.version),
                "code_checksum": self.code_checksum, "code_size": self.code_size,
                "compatible_runtime": list(self.compatible_runtime), "description": self.description,
                "license": self.license,
                "create_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.create_time))}


class Layers:
    def __init__(self, database: Path, code: CodeStore, root: Path) -> None:
        self._code = code
        self._merged = root / MERGED_DIR
        self._merged.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(database), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # the registry ---------------------------------------------------------------------------------------------
    def next_version(self, name: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT last_version FROM layer_counters WHERE name=?", (name,)).fetchone()
        return (int(row[0]) if row else 0) + 1

    def register(self, name: str, version: str, body: dict[str, Any]) -> LayerRecord:
        """Registers an uploaded package as layer version ``name``/``version`` (checked and unpacked first). The
        same registration again is a no-op; other content under a taken version, or a version at or below one
        given out before, is refused: layer versions are immutable and never reused."""
        if not LAYER_NAME.match(name):
            raise BadRequest(f"layer_name {name!r} must be 1-64 letters, digits, '_' or '-', starting with a letter "
                             "or '_'")
        if not version.isdigit() or int(version) < 1:
            raise BadRequest(f"layer version must be an integer from 1, got {version!r}")
        checksum = body.get("code_checksum")
        if not isinstance(checksum, str):
            raise BadRequest("code_checksum is required: the sha256 of the uploaded layer package")
        runtimes = body.get("compatible_runtime") or []
        if not isinstance(runtimes, list) or not all(isinstance(r, str) for r in runtimes):
            raise BadRequest("compatible_runtime must be a list of runtime names")
        self._code.unpacked(checksum)  # verifies the upload; refuses entries escaping the root
        record = LayerRecord(name, int(version), checksum, int(body.get("code_size") or 0), tuple(runtimes),
                             str(body.get("description") or ""), str(body.get("license") or ""), time.time())
        with self._lock:
            existing = self._get(name, int(version))
            if existing is not None:
                if existing.code_checksum != checksum or existing.compatible_runtime != record.compatible_runtime:
                    raise Conflict(f"layer {name} version {version} already exists with other content; layer "
                                   "versions are immutable", code="LayerVersionExists")
                return existing
            row = self._db.execute("SELECT last_version FROM layer_counters WHERE name=?", (name,)).fetchone()
            if row and int(row[0]) >= int(version):
                raise Conflict(f"layer {name} version {version} was given out before (the last is {row[0]}); "
                               "layer versions are never reused", code="LayerVersionTaken")
            self._db.execute("INSERT OR REPLACE INTO layer_counters VALUES (?,?)", (name, int(version)))
            self._db.execute("INSERT INTO layer_versions VALUES (?,?,?)",
                             (name, int(version), json.dumps({**record.to_json(), "create_time": record.create_time})))
        return record

    def _get(self, name: str, version: int) -> LayerRecord | None:
        row = self._db.execute("SELECT record FROM layer_versions WHERE name=? AND version=?",
                               (name, version)).fetchone()
        return _record(json.loads(row[0])) if row else None

    def get(self, name: str, version: str) -> LayerRecord:
        with self._lock:
            record = self._get(name, int(version)) if version.isdigit() else None
        if record is None:
            raise NotFound(f"layer {name} version {version} does not exist on this host", code="LayerNotFound")
        return record

    def list(self) -> list[LayerRecord]:
        with self._lock:
            rows = self._db.execute("SELECT record FROM layer_versions ORDER BY name, version").fetchall()
        return [_record(json.loads(r[0])) for r in rows]

    def delete(self, name: str, version: str) -> None:
        self.get(name, version)
        with self._lock:
            self._db.execute("DELETE FROM layer_versions WHERE name=? AND version=?", (name, int(version)))

    # functions' use -------------------------------------------------------------------------------------------
    def resolve(self, layers: Any, runtime: str) -> list[str]:
        """The packages of a function's ``layers`` (ARNs, first-listed first), checked: at most 5, each a
        registered layer version compatible with ``runtime``. Errors name the entry."""
        if not isinstance(layers, list) or not all(isinstance(a, str) for a in layers):
            raise BadRequest("layers must be a list of layer version ARNs")
        if len(layers) > MAX_LAYERS:
            raise BadRequest(f"layers lists {len(layers)} layers; a function takes at most {MAX_LAYERS}")
        checksums = []
        for index, arn in enumerate(layers):
            m = arns.LAYER_ARN.match(arn)
            if not m:
                raise BadRequest(f"layers[{index}] {arn!r} is not a layer version ARN of this fleet "
                                 "(acs:fc:local:fleet:layers/NAME/versions/N)")
            try:
                record = self.get(m.group(1), m.group(2))
            except NotFound as exc:
                raise NotFound(f"layers[{index}]: {exc.message}", code="LayerNotFound") from exc
            if record.compatible_runtime and runtime not in record.compatible_runtime:
                raise BadRequest(f"layers[{index}]: layer {record.name} version {record.version} is compatible with "
                                 f"{', '.join(record.compatible_runtime)}, not {runtime}")
            checksums.append(record.code_checksum)
        return checksums

    def opt_dir(self, checksums: list[str]) -> Path | None:
        """The merged tree of these packages (first-listed wins), built once; None without layers."""
        if not checksums:
            return None
        target = self._merged / _merge_key(checksums)
        if target.is_dir():
            return target
        staging = target.with_name(f".{target.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o755)
        for checksum in reversed(checksums):  # the last-listed first: each earlier layer overwrites it
            _overlay(self._code.unpacked(checksum), staging)
        (staging / RUNTIME_MOUNTPOINT).mkdir(mode=0o755, exist_ok=True)
        os.chmod(staging, 0o755)
        try:
            staging.rename(target)
        except OSError:  # another start built it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def in_use(self, specs: Iterable[dict[str, Any]]) -> set[str]:
        """Packages to keep: every registered layer version's and every one a spec uses. Merged trees no spec
        uses are removed on the way."""
        lists = [s.get("layer_checksums") or [] for s in specs]
        keep_merged = {_merge_key(c) for c in lists if c}
        for entry in self._merged.iterdir():
            if entry.name not in keep_merged and not entry.name.startswith("."):
                shutil.rmtree(entry, ignore_errors=True)
        return {r.code_checksum for r in self.list()} | {c for checksums in lists for c in checksums}


def _merge_key(checksums: list[str]) -> str:
    return hashlib.sha256("\n".join(checksums).encode()).hexdigest()[:32]


def _record(data: dict[str, Any]) -> LayerRecord:
    return LayerRecord(data["layer_name"], int(data["version"]), data["code_checksum"], int(data["code_size"]),
                       tuple(data["compatible_runtime"]), data["description"], data["license"],
                       float(data["create_time"]))


def _overlay(source: Path, target: Path) -> None:
    """Lays ``source`` over ``target``: what ``source`` holds replaces what ``target`` holds under the same name."""
    for entry in os.scandir(source):
        dest = target / entry.name
        if entry.is_dir(follow_symlinks=False):
            if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
                dest.unlink()
            dest.mkdir(mode=0o755, exist_ok=True)
            _overlay(Path(entry.path), dest)
            continue
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.is_symlink() or dest.exists():
            dest.unlink()
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), dest)
        else:
            try:
                os.link(entry.path, dest)  # read-only for instances: sharing the inode is safe
            except OSError:
                shutil.copy2(entry.path, dest)
