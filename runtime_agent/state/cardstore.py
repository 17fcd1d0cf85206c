"""Durable GPU card leases in SQLite: one row per leased card, keyed by the card's UUID, so the database itself
refuses a second lease of a card (the PRIMARY KEY), whatever the caller's bookkeeping. Shares the agent's database
file through its own connection (WAL mode serves both)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS gpu_leases (
    card_uuid TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    function TEXT NOT NULL,
    since REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS gpu_leases_instance ON gpu_leases (instance_id);
CREATE TABLE IF NOT EXISTS gpu_pools (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gpu_pool_cards (
    card_uuid TEXT PRIMARY KEY,
    pool TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Lease:
    card_uuid: str
    instance_id: str
    function: str
    since: float


class CardStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def lease(self, cards: list[str], instance_id: str, function: str) -> bool:
        """All of ``cards`` to ``instance_id`` in one transaction, or none (False) if any is leased already."""
        now = time.time()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT INTO gpu_leases VALUES (?,?,?,?)",
                                     [(card, instance_id, function, now) for card in cards])
                self._db.execute("COMMIT")
                return True
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                return False

    def release(self, instance_id: str) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT card_uuid FROM gpu_leases WHERE instance_id=?", (instance_id,)).fetchall()
            self._db.execute("DELETE FROM gpu_leases WHERE instance_id=?", (instance_id,))
        return [r[0] for r in rows]

    def put_pool(self, name: str, spec: dict, cards: list[str]) -> bool:
        """The pool and its reserved cards, replacing what it had; False if a card is another pool's."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("DELETE FROM gpu_pool_cards WHERE pool=?", (name,))
                self._db.execute("INSERT OR REPLACE INTO gpu_pools VALUES (?,?)", (name, json.dumps(spec)))
                self._db.executemany("INSERT INTO gpu_pool_cards VALUES (?,?)", [(c, name) for c in cards])
                self._db.execute("COMMIT")
                return True
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                return False

    def delete_pool(self, name: str) -> bool:
        with self._lock:
            self._db.execute("DELETE FROM gpu_pool_cards WHERE pool=?", (name,))
            return self._db.execute("DELETE FROM gpu_pools WHERE name=?", (name,)).rowcount > 0

    def pools(self) -> dict[str, tuple[dict, list[str]]]:
        with self._lock:
            specs = self._db.execute("SELECT name, spec FROM gpu_pools").fetchall()
            cards = self._db.execute("SELECT card_uuid, pool FROM gpu_pool_cards ORDER BY card_uuid").fetchall()
        return {name: (json.loads(spec), [c for c, p in cards if p == name]) for name, spec in specs}

    def leases(self) -> list[Lease]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM gpu_leases ORDER BY card_uuid").fetchall()
        return [Lease(*r) for r in rows]
