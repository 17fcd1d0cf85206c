"""The agent's durable state in SQLite: functions (their spec as deployed) and instances (container handles).

One connection, guarded by a lock: the agent's writes are small and rare next to invocations, which never touch
the database on the warm path.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS functions (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    code_checksum TEXT NOT NULL,
    created_time REAL NOT NULL,
    last_modified_time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY,
    function TEXT NOT NULL,
    generation TEXT NOT NULL,
    container_id TEXT,
    address TEXT,
    state TEXT NOT NULL,
    created_time REAL NOT NULL
);
"""


@dataclass(frozen=True)
class FunctionRecord:
    name: str
    spec: dict[str, Any]
    code_checksum: str | None  # None: a custom-container function, which has no code
    created_time: float
    last_modified_time: float
    version: str | None = None  # None: LATEST; else the published version this record is a snapshot of

    @property
    def qualifier(self) -> str:
        return self.version or "LATEST"

    @property
    def pool_key(self) -> str:
        """Each version has its own instance pool: "name" for LATEST, "name:3" for version 3 (":" is not allowed
        in function names)."""
        return f"{self.name}:{self.version}" if self.version else self.name

    def to_json(self) -> dict[str, Any]:
        return {
            "function_name": self.name,
            **self.spec,
            "code_checksum": self.code_checksum,
            "created_time": _iso(self.created_time),
            "last_modified_time": _iso(self.last_modified_time),
        }


@dataclass(frozen=True)
class InstanceRecord:
    id: str
    function: str
    generation: str
    container_id: str | None
    address: str | None
    state: str
    created_time: float


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # functions
    def put_function(self, name: str, spec: dict[str, Any], code_checksum: str | None) -> FunctionRecord:
        now = time.time()
        with self._lock:
            row = self._db.execute("SELECT created_time FROM functions WHERE name=?", (name,)).fetchone()
            created = row[0] if row else now
            self._db.execute(
                "INSERT OR REPLACE INTO functions VALUES (?,?,?,?,?)",
                (name, json.dumps(spec, sort_keys=True), code_checksum or "", created, now),
            )
        return FunctionRecord(name, spec, code_checksum, created, now)

    def get_function(self, name: str) -> FunctionRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM functions WHERE name=?", (name,)).fetchone()
        return _function(row) if row else None

    def list_functions(self) -> list[FunctionRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM functions ORDER BY name").fetchall()
        return [_function(r) for r in rows]

    def delete_function(self, name: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM functions WHERE name=?", (name,))
        return cur.rowcount > 0

    # instances
    def put_instance(self, rec: InstanceRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO instances VALUES (?,?,?,?,?,?,?)",
                (rec.id, rec.function, rec.generation, rec.container_id, rec.address, rec.state, rec.created_time),
            )

    def delete_instance(self, instance_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM instances WHERE id=?", (instance_id,))

    def list_instances(self) -> list[InstanceRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM instances").fetchall()
        return [InstanceRecord(*r) for r in rows]


def _function(row: tuple) -> FunctionRecord:
    return FunctionRecord(row[0], json.loads(row[1]), row[2] or None, row[3], row[4])
