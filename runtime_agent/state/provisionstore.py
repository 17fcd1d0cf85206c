"""Provision configs in SQLite: per function, the config as the provider sent it, this host's rank among the
function's hosts and their names (the rank decides this host's share of a fleet-wide target)."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS provision_configs (
    function TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    rank INTEGER NOT NULL,
    hosts TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class ProvisionRecord:
    function: str
    config: dict[str, Any]
    rank: int
    hosts: list[str]


class ProvisionStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def put(self, record: ProvisionRecord) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO provision_configs VALUES (?,?,?,?)",
                             (record.function, json.dumps(record.config, sort_keys=True), record.rank,
                              json.dumps(record.hosts)))

    def delete(self, function: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM provision_configs WHERE function=?", (function,)).rowcount > 0

    def list(self) -> list[ProvisionRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM provision_configs ORDER BY function").fetchall()
        return [ProvisionRecord(r[0], json.loads(r[1]), int(r[2]), json.loads(r[3])) for r in rows]
