"""What an OSS trigger has seen of its bucket, so each object event is delivered once:

- ``oss_objects``: the objects the trigger knows (key -> ETag, size), the persisted position the listing
  reconciles against (a StartAfter cursor could not see deletes or overwrites of keys already passed);
- ``oss_seen``: (trigger, key, ETag, kind) of every event delivered, kind "created" or "removed": a webhook record
  and the listing that finds the same change meet here, whichever comes first;
- ``oss_primed``: triggers whose bucket was listed once (objects there before the trigger fire nothing);
- ``oss_claims``: which host of the trigger's peers delivers an event (events/oss_claims.py), the first to record
  itself here or on a peer; kept a week.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS oss_objects (trigger_id TEXT NOT NULL, key TEXT NOT NULL, etag TEXT NOT NULL,
    size INTEGER NOT NULL, PRIMARY KEY (trigger_id, key));
CREATE TABLE IF NOT EXISTS oss_seen (trigger_id TEXT NOT NULL, key TEXT NOT NULL, etag TEXT NOT NULL,
    kind TEXT NOT NULL, recorded REAL NOT NULL, PRIMARY KEY (trigger_id, key, etag, kind));
CREATE TABLE IF NOT EXISTS oss_primed (trigger_id TEXT PRIMARY KEY, primed REAL NOT NULL);
CREATE TABLE IF NOT EXISTS oss_claims (trigger_id TEXT NOT NULL, event TEXT NOT NULL, holder TEXT NOT NULL,
    claimed REAL NOT NULL, PRIMARY KEY (trigger_id, event));
"""


class OssIndex:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()  # held by the trigger logic across a check-and-record
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self.lock:
            self._db.close()

    def objects(self, trigger_id: str) -> dict[str, tuple[str, int]]:
        with self.lock:
            rows = self._db.execute("SELECT key, etag, size FROM oss_objects WHERE trigger_id=?",
                                    (trigger_id,)).fetchall()
        return {k: (e, s) for k, e, s in rows}

    def known(self, trigger_id: str, key: str) -> tuple[str, int] | None:
        with self.lock:
            row = self._db.execute("SELECT etag, size FROM oss_objects WHERE trigger_id=? AND key=?",
                                   (trigger_id, key)).fetchone()
        return (row[0], row[1]) if row else None

    def set_object(self, trigger_id: str, key: str, etag: str, size: int) -> None:
        with self.lock:
            self._db.execute("INSERT OR REPLACE INTO oss_objects VALUES (?,?,?,?)", (trigger_id, key, etag, size))

    def drop_object(self, trigger_id: str, key: str) -> None:
        with self.lock:
            self._db.execute("DELETE FROM oss_objects WHERE trigger_id=? AND key=?", (trigger_id, key))

    def first_time(self, trigger_id: str, key: str, etag: str, kind: str) -> bool:
        """Records the event; True only the first time it is seen. A key removed can be created again with the
        same content (ETag), and the other way round: each kind clears the key's rows of the other."""
        with self.lock:
            cur = self._db.execute("INSERT OR IGNORE INTO oss_seen VALUES (?,?,?,?,?)",
                                   (trigger_id, key, etag, kind, time.time()))
            if cur.rowcount == 1:
                self._db.execute("DELETE FROM oss_seen WHERE trigger_id=? AND key=? AND kind<>?",
                                 (trigger_id, key, kind))
        return cur.rowcount == 1

    def primed(self, trigger_id: str) -> bool:
        with self.lock:
            return self._db.execute("SELECT 1 FROM oss_primed WHERE trigger_id=?", (trigger_id,)).fetchone() is not None

    def prime(self, trigger_id: str, objects: dict[str, tuple[str, int]]) -> None:
        with self.lock:
            self._db.execute("DELETE FROM oss_objects WHERE trigger_id=?", (trigger_id,))
            self._db.executemany("INSERT INTO oss_objects VALUES (?,?,?,?)",
                                 [(trigger_id, k, e, s) for k, (e, s) in objects.items()])
            self._db.execute("INSERT OR REPLACE INTO oss_primed VALUES (?,?)", (trigger_id, time.time()))

    def claim(self, trigger_id: str, event: str, holder: str) -> str:
        """Records ``holder`` for the event unless one is recorded already; returns the event's holder."""
        with self.lock:
            self._db.execute("INSERT OR IGNORE INTO oss_claims VALUES (?,?,?,?)",
                             (trigger_id, event, holder, time.time()))
            return self._db.execute("SELECT holder FROM oss_claims WHERE trigger_id=? AND event=?",
                                    (trigger_id, event)).fetchone()[0]

    def forget_claims_before(self, before: float) -> None:
        with self.lock:
            self._db.execute("DELETE FROM oss_claims WHERE claimed < ?", (before,))

    def forget(self, trigger_id: str) -> None:
        with self.lock:
            for table in ("oss_objects", "oss_seen", "oss_primed", "oss_claims"):
                self._db.execute(f"DELETE FROM {table} WHERE trigger_id=?", (trigger_id,))
