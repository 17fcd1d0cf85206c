"""Provision configs in SQLite: per function, the config as the provider sent it, this host's rank among the
function's hosts and their names (the rank decides this host's share of a fleet-wide target), and the fleet
exchange's settings (``{"peers": [{name, address, port}], "peer_key"}``: events/provision_fleet.py)."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS provision_configs (
    function TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    rank INTEGER NOT NULL,
    hosts TEXT NOT NULL,
    fleet TEXT NOT NULL DEFAULT '{}'
);
"""


@dataclass(frozen=True)
class ProvisionRecord:
    function: str
    config: dict[str, Any]
    rank: int
    hosts: list[str]
    fleet: dict[str, Any] = field(default_factory=dict)


class ProvisionStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(provision_configs)")}
        if "fleet" not in columns:  # a database from before the fleet exchange
            self._db.execute("ALTER TABLE provision_configs ADD COLUMN fleet TEXT NOT NULL DEFAULT '{}'")

    def put(self, record: ProvisionRecord) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO provision_configs (function, config, rank, hosts, fleet) "
                             "VALUES (?,?,?,?,?)",
                             (record.function, json.dumps(record.config, sort_keys=True), record.rank,
                              json.dumps(record.hosts), json.dumps(record.fleet)))

    def delete(self, function: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM provision_configs WHERE function=?", (function,)).rowcount > 0

    def list(self) -> list[ProvisionRecord]:
        with self._lock:
            rows = self._db.execute("SELECT function, config, rank, hosts, fleet FROM provision_configs "
                                    "ORDER BY function").fetchall()
        return [ProvisionRecord(r[0], json.loads(r[1]), int(r[2]), json.loads(r[3]), json.loads(r[4])) for r in rows]
