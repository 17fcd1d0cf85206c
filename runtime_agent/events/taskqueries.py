"""The reading side of the SQLite task queue (``taskstore.TaskStore`` inherits it): a task and its events, keyset
pages, the queue's statistics, the purge of old records, and the AsyncInvokeConfig rows. They use the store's main
connection under its lock (``_lock``, ``_db``) and its write transaction (``_transaction``)."""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Any, ContextManager

from .states import IN_HAND, WAITING
from .taskrows import SELECT_TASKS, Task


class TaskQueries:
    _lock: threading.Lock
    _db: sqlite3.Connection

    def _transaction(self) -> ContextManager[None]:
        raise NotImplementedError

    def get(self, function: str, task_id: str) -> Task | None:
        with self._lock:
            row = self._db.execute(f"{SELECT_TASKS} WHERE function=? AND task_id=?", (function, task_id)).fetchone()
        return Task(*row) if row else None

    def events(self, task: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT event_id, status, ts_ms, detail FROM task_events WHERE task=? "
                                    "ORDER BY event_id", (task,)).fetchall()
        return [{"eventId": r[0], "status": r[1], "timestamp": r[2], "eventDetail": r[3]} for r in rows]

    def list(self, function: str, *, prefix: str | None, status: str | None, begin_ms: int | None,
             end_ms: int | None, descending: bool, limit: int, after: tuple[int, int] | None,
             qualifier: str | None = None) -> list[Task]:
        """Keyset pages ordered by (enqueued_ms, id); ``after`` is the last key of the previous page."""
        where, args = ["function=?"], [function]
        if qualifier:
            where.append("qualifier=?")
            args.append(qualifier)
        if prefix:
            where.append("task_id >= ? AND task_id < ?")
            args += [prefix, prefix + "\U0010ffff"]
        if status:
            where.append("status=?")
            args.append(status)
        if begin_ms is not None:
            where.append("enqueued_ms >= ?")
            args.append(begin_ms)
        if end_ms is not None:
            where.append("enqueued_ms <= ?")
            args.append(end_ms)
        if after is not None:
            where.append(f"(enqueued_ms, id) {'<' if descending else '>'} (?, ?)")
            args += list(after)
        order = "DESC" if descending else "ASC"
        with self._lock:
            rows = self._db.execute(f"{SELECT_TASKS} WHERE {' AND '.join(where)} "
                                    f"ORDER BY enqueued_ms {order}, id {order} LIMIT ?", [*args, limit]).fetchall()
        return [Task(*r) for r in rows]

    def stats(self, now_ms: int) -> dict[str, dict[str, float]]:
        """Per function: waiting tasks (queue depth), in hand, and the age of the oldest waiting event."""
        with self._lock:
            rows = self._db.execute(
                "SELECT function, status, COUNT(*), MIN(enqueued_ms) FROM tasks WHERE status IN (?,?,?,?,?) "
                "GROUP BY function, status", [s.value for s in (*WAITING, *IN_HAND)]).fetchall()
        out: dict[str, dict[str, float]] = {}
        for function, status, count, oldest in rows:
            entry = out.setdefault(function, {"waiting": 0, "in_hand": 0, "oldest_age_s": 0.0})
            if status in (s.value for s in WAITING):
                entry["waiting"] += count
                entry["oldest_age_s"] = max(entry["oldest_age_s"], (now_ms - oldest) / 1000)
            else:
                entry["in_hand"] += count
        return out

    def purge(self, before_ms: int) -> int:
        """Forgets ended tasks (and their events and deliveries) that ended before ``before_ms``."""
        with self._transaction():
            ids = "SELECT id FROM tasks WHERE end_ms IS NOT NULL AND end_ms < ? AND " \
                  "(destination_status IS NULL OR destination_status != 'Pending')"
            self._db.execute(f"DELETE FROM task_events WHERE task IN ({ids})", (before_ms,))
            self._db.execute(f"DELETE FROM deliveries WHERE task IN ({ids})", (before_ms,))
            return self._db.execute(f"DELETE FROM tasks WHERE id IN ({ids})", (before_ms,)).rowcount

    # async invoke configs ----------------------------------------------------------------------------------------
    def put_config(self, function: str, qualifier: str, config: dict, now_ms: int) -> tuple[int, int]:
        with self._transaction():
            row = self._db.execute("SELECT created_ms FROM async_configs WHERE function=? AND qualifier=?",
                                   (function, qualifier)).fetchone()
            created = row[0] if row else now_ms
            self._db.execute("INSERT OR REPLACE INTO async_configs VALUES (?,?,?,?,?)",
                             (function, qualifier, json.dumps(config, sort_keys=True), created, now_ms))
        return created, now_ms

    def get_config(self, function: str, qualifier: str) -> tuple[dict, int, int] | None:
        with self._lock:
            row = self._db.execute("SELECT config, created_ms, modified_ms FROM async_configs WHERE function=? AND "
                                   "qualifier=?", (function, qualifier)).fetchone()
        return (json.loads(row[0]), row[1], row[2]) if row else None

    def delete_config(self, function: str, qualifier: str) -> bool:
        with self._transaction():
            cur = self._db.execute("DELETE FROM async_configs WHERE function=? AND qualifier=?", (function, qualifier))
        return cur.rowcount > 0
