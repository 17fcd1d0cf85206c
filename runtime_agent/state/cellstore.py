"""Stem cells as SQLite rows: which started, code-less runtime containers exist, and which were handed to a function.

A cell is marked ``assigned`` (with the instance it became) in SQLite before anything of the function reaches it;
an agent restarted after ``kill -9`` therefore never hands an assigned cell out again: it re-adopts idle cells,
leaves assigned ones to the instance they became (or removes them), and removes every cell without a row.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS stem_cells (
    id TEXT PRIMARY KEY,
    container_id TEXT NOT NULL,
    runtime TEXT NOT NULL,
    image TEXT NOT NULL,
    digest TEXT NOT NULL,
    state TEXT NOT NULL,          -- idle | assigned
    instance_id TEXT,
    created_time REAL NOT NULL
);
"""

IDLE = "idle"
ASSIGNED = "assigned"


@dataclass(frozen=True)
class CellRecord:
    id: str
    container_id: str
    runtime: str
    image: str
    digest: str  # the built-in runtime's digest the cell started with (spec.RUNTIME_DIGEST)
    state: str
    instance_id: str | None
    created_time: float


class CellStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # survives kill -9 of the agent (the OS keeps the WAL)
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_idle(self, cell_id: str, container_id: str, runtime: str, image: str, digest: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO stem_cells VALUES (?,?,?,?,?,?,?,?)",
                             (cell_id, container_id, runtime, image, digest, IDLE, None, time.time()))

    def assign(self, cell_id: str, instance_id: str) -> bool:
        """Marks an idle cell as given to ``instance_id``; False if it was not idle (never given twice)."""
        with self._lock:
            cur = self._db.execute("UPDATE stem_cells SET state=?, instance_id=? WHERE id=? AND state=?",
                                   (ASSIGNED, instance_id, cell_id, IDLE))
        return cur.rowcount == 1

    def delete(self, cell_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM stem_cells WHERE id=?", (cell_id,))

    def all(self) -> list[CellRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM stem_cells ORDER BY created_time").fetchall()
        return [CellRecord(*row) for row in rows]
