"""Triggers and the records that make their firings happen once: SQLite tables next to the functions'.

- ``triggers``: one row per (function, trigger), the spec as the provider sent it.
- ``timer_firings``: one row per (trigger id, scheduled instant), written before a tick is fired or granted to a
  peer; the primary key is what makes a tick fire once (see events/timer.py).

Its own connection to the agent's database file (WAL mode lets the two connections write in turn).
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
CREATE TABLE IF NOT EXISTS triggers (
    function TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_time REAL NOT NULL,
    last_modified_time REAL NOT NULL,
    PRIMARY KEY (function, name)
);
CREATE TABLE IF NOT EXISTS timer_firings (
    trigger_id TEXT NOT NULL,
    scheduled REAL NOT NULL,
    holder TEXT NOT NULL,
    recorded REAL NOT NULL,
    PRIMARY KEY (trigger_id, scheduled)
);
"""
SECRET_KEYS = ("peer_key",)  # never returned by the control API


@dataclass(frozen=True)
class TriggerRecord:
    function: str
    name: str
    spec: dict[str, Any]  # trigger_type, qualifier, description, trigger_config, url_label, peers, peer_key, source
    created_time: float
    last_modified_time: float

    @property
    def id(self) -> str:
        return f"{self.function}:{self.name}"

    @property
    def type(self) -> str:
        return self.spec["trigger_type"]

    @property
    def config(self) -> dict[str, Any]:
        return self.spec.get("trigger_config") or {}

    def to_json(self) -> dict[str, Any]:
        return {
            "function_name": self.function, "trigger_name": self.name, "trigger_id": self.id,
            **{k: v for k, v in self.spec.items() if k not in SECRET_KEYS},
            **({"source": {k: v for k, v in self.spec["source"].items() if k != "secret_access_key"}}
               if isinstance(self.spec.get("source"), dict) else {}),
            "created_time": _iso(self.created_time), "last_modified_time": _iso(self.last_modified_time),
        }


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class TriggerStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, function: str, name: str, spec: dict[str, Any]) -> TriggerRecord:
        now = time.time()
        with self._lock:
            row = self._db.execute("SELECT created_time, spec FROM triggers WHERE function=? AND name=?",
                                   (function, name)).fetchone()
            if row and json.loads(row[1]) == spec:  # an unchanged PUT keeps its times
                return TriggerRecord(function, name, spec, row[0], self._modified(function, name))
            created = row[0] if row else now
            self._db.execute("INSERT OR REPLACE INTO triggers VALUES (?,?,?,?,?)",
                             (function, name, json.dumps(spec, sort_keys=True), created, now))
        return TriggerRecord(function, name, spec, created, now)

    def _modified(self, function: str, name: str) -> float:
        return self._db.execute("SELECT last_modified_time FROM triggers WHERE function=? AND name=?",
                                (function, name)).fetchone()[0]

    def get(self, function: str, name: str) -> TriggerRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM triggers WHERE function=? AND name=?", (function, name)).fetchone()
        return _record(row) if row else None

    def list(self, function: str | None = None) -> list[TriggerRecord]:
        with self._lock:
            if function is None:
                rows = self._db.execute("SELECT * FROM triggers ORDER BY function, name").fetchall()
            else:
                rows = self._db.execute("SELECT * FROM triggers WHERE function=? ORDER BY name",
                                        (function,)).fetchall()
        return [_record(r) for r in rows]

    def delete(self, function: str, name: str | None = None) -> int:
        """Deletes one trigger, or every trigger of ``function`` when ``name`` is None; returns how many."""
        with self._lock:
            if name is None:
                cur = self._db.execute("DELETE FROM triggers WHERE function=?", (function,))
            else:
                cur = self._db.execute("DELETE FROM triggers WHERE function=? AND name=?", (function, name))
        return cur.rowcount

    # timer firings
    def claim_tick(self, trigger_id: str, scheduled: float, holder: str) -> str:
        """Records ``holder`` for the tick unless one is recorded already; returns the tick's holder."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO timer_firings VALUES (?,?,?,?)",
                             (trigger_id, scheduled, holder, time.time()))
            return self._db.execute("SELECT holder FROM timer_firings WHERE trigger_id=? AND scheduled=?",
                                    (trigger_id, scheduled)).fetchone()[0]

    def last_tick(self, trigger_id: str) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MAX(scheduled) FROM timer_firings WHERE trigger_id=?",
                                   (trigger_id,)).fetchone()
        return row[0] if row else None

    def forget_ticks_before(self, before: float) -> None:
        with self._lock:
            self._db.execute("DELETE FROM timer_firings WHERE scheduled < ?", (before,))


def _record(row: tuple) -> TriggerRecord:
    return TriggerRecord(row[0], row[1], json.loads(row[2]), row[3], row[4])
