"""Provision configs in SQLite: per function and qualifier (LATEST or an alias), the config as the provider sent
it, this host's rank among the function's hosts and their names (the rank decides this host's share of a fleet-wide
target), and the fleet exchange's settings (``{"peers": [{name, address, port}], "peer_key"}``:
events/provision_fleet.py)."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LATEST = "LATEST"

SCHEMA = """
CREATE TABLE IF NOT EXISTS provision_configs (
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL DEFAULT 'LATEST',
    config TEXT NOT NULL,
    rank INTEGER NOT NULL,
    hosts TEXT NOT NULL,
    fleet TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (function, qualifier)
);
"""


@dataclass(frozen=True)
class ProvisionRecord:
    function: str
    config: dict[str, Any]
    rank: int
    hosts: list[str]
    fleet: dict[str, Any] = field(default_factory=dict)
    qualifier: str = LATEST

    @property
    def key(self) -> tuple[str, str]:
        return (self.function, self.qualifier)


def _migrate(db: sqlite3.Connection) -> None:
    """A database from before qualifiers keyed configs by function alone (and, older still, had no fleet column):
    its configs were LATEST's. SQLite cannot change a primary key in place, so the table is rebuilt."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(provision_configs)")}
    if not columns or "qualifier" in columns:
        return
    fleet = "fleet" if "fleet" in columns else "'{}'"
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("ALTER TABLE provision_configs RENAME TO provision_configs_by_function")
        db.execute(SCHEMA.strip().rstrip(";"))  # execute(), not executescript(), which would commit midway
        db.execute(f"INSERT INTO provision_configs (function, qualifier, config, rank, hosts, fleet) "
                   f"SELECT function, 'LATEST', config, rank, hosts, {fleet} FROM provision_configs_by_function")
        db.execute("DROP TABLE provision_configs_by_function")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


class ProvisionStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        _migrate(self._db)
        self._db.executescript(SCHEMA)

    def put(self, record: ProvisionRecord) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO provision_configs (function, qualifier, config, rank, hosts, "
                             "fleet) VALUES (?,?,?,?,?,?)",
                             (record.function, record.qualifier, json.dumps(record.config, sort_keys=True),
                              record.rank, json.dumps(record.hosts), json.dumps(record.fleet)))

    def delete(self, function: str, qualifier: str | None = None) -> bool:
        """One config, or with no qualifier every config of the function (the function is deleted)."""
        with self._lock:
            if qualifier is None:
                return self._db.execute("DELETE FROM provision_configs WHERE function=?", (function,)).rowcount > 0
            return self._db.execute("DELETE FROM provision_configs WHERE function=? AND qualifier=?",
                                    (function, qualifier)).rowcount > 0

    def list(self) -> list[ProvisionRecord]:
        with self._lock:
            rows = self._db.execute("SELECT function, config, rank, hosts, fleet, qualifier FROM provision_configs "
                                    "ORDER BY function, qualifier").fetchall()
        return [ProvisionRecord(r[0], json.loads(r[1]), int(r[2]), json.loads(r[3]), json.loads(r[4]), r[5])
                for r in rows]
