"""The per-host durable queue of asynchronous tasks, in SQLite (its own file, ``tasks.db``).

Durability: WAL. Accepting commits with ``synchronous=FULL``, so an event's row and its first state are on disk
(fsynced) before its 202 leaves, and it is a group commit: requests that arrive while a commit is in progress are
written together in the next one: one statement and one fsync for all of them, on a connection of its own that
is always FULL. The workers' transitions (claimed, running,
retrying, ended, deliveries) commit with ``synchronous=NORMAL``: they survive a crash of the agent (``kill -9``)
like every SQLite commit, and the next accepting commit's fsync makes them durable too; what an OS crash could
take back is at most the last of them, and each only ever leads to a task being run again (at least once), never
to an event lost.

Leases: a worker claims a task by writing this agent process's boot id into ``lease_owner``. Only one agent runs
per host, so a lease is valid exactly while its owner is the running boot; a task found in hand (Dequeued,
Running, Stopping) under another boot id at start-up was interrupted and is recovered (see ``recover``).

Tables: ``tasks`` (one row per event, key (function, task_id)), ``task_events`` (FC's time-stamped
AsyncTaskEvent list), ``deliveries`` (the destination outbox, written in the transaction that ends the task),
``async_configs`` (AsyncInvokeConfig per function and qualifier).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

from .states import IN_HAND, WAITING, TaskStatus
from .taskqueries import TaskQueries
from .taskrows import SCHEMA, SELECT_TASKS, Delivery, NewTask, Task

__all__ = ["Delivery", "NewTask", "Task", "TaskStore"]

ACCEPT_CHUNK = 1024  # rows per multi-row INSERT: 12 variables each, under SQLite's 32,766
_TASK_COLUMNS = ("id, function, task_id, qualifier, request_id, task_mode, payload, status, max_retries, "
                 "enqueued_ms, deadline_ms, not_before_ms")


class _Pending:
    """One accepted event waiting for its commit. The waiter blocks on a bare lock that the committer releases:
    no Python-level condition to wake, and releasing never gives up the GIL."""

    __slots__ = ("task", "done", "accepted", "error")

    def __init__(self, task: NewTask) -> None:
        self.task = task
        self.done = threading.Lock()
        self.done.acquire()
        self.accepted = False
        self.error: BaseException | None = None


class TaskStore(TaskQueries):
    def __init__(self, path: Path, boot_id: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.boot_id = boot_id
        # _lock guards the main connection (every read, and its own writes); _write_lock makes the two connections'
        # writers take turns (taken before _lock). The committer takes only _write_lock, so a reader scanning the
        # queue never holds up an accepting commit, nor the commit's fsync a read.
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # transitions; accepting has its own FULL connection
        self._db.executescript(SCHEMA)
        # Accepting commits on a connection of its own, always synchronous=FULL (no pragma flipped per batch); it
        # writes under the same lock as every other writer, so the two never meet as SQLite writers.
        self._accept_db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._accept_db.execute("PRAGMA synchronous=FULL")  # a 202 promises the event survives a power cut
        # Only the committer inserts tasks, so it hands out their ids itself: a batch is then one multi-row INSERT
        # per table. Each SQLite statement gives the GIL up and must win it back from the request threads, so
        # statements per batch, not per event, is what keeps a busy committer fast.
        self._next_id = (self._db.execute("SELECT MAX(id) FROM tasks").fetchone()[0] or 0) + 1
        self.accept_commits = 0  # group commits made; accepted events / this = the mean batch
        self._pending: list[_Pending] = []
        self._pending_cond = threading.Condition()
        self._closed = False
        self._committer = threading.Thread(target=self._commit_loop, name="task-commit", daemon=True)
        self._committer.start()

    def release(self, task: int) -> None:
        """Nothing to do: a task left in hand under this boot is recovered by the next boot (``recover``)."""

    def attach(self, *, ready: Callable[[str], None], end_instance: Callable[[str, str], Any]) -> None:
        """Nothing to attach: the workers hear of this host's enqueues from the invoker, and stops and restarts
        are this host's own (``recover``)."""

    def close(self) -> None:
        with self._pending_cond:
            self._closed = True
            self._pending_cond.notify_all()
        self._committer.join(timeout=5)
        with self._write_lock, self._lock:
            self._accept_db.close()
            self._db.close()

    # accepting: group commit ------------------------------------------------------------------------------------
    def enqueue(self, task: NewTask) -> bool:
        """Commits the task and its Enqueued event; False when (function, task_id) already exists (a duplicate)."""
        pending = _Pending(task)
        with self._pending_cond:
            if self._closed:
                raise RuntimeError("the task store is closed")
            self._pending.append(pending)
            if len(self._pending) == 1:
                self._pending_cond.notify()  # the committer waits only when nothing was pending
        pending.done.acquire()
        if pending.error is not None:
            raise pending.error
        return pending.accepted

    def _commit_loop(self) -> None:
        while True:
            with self._pending_cond:
                while not self._pending and not self._closed:
                    self._pending_cond.wait()
                if not self._pending and self._closed:
                    return
                batch, self._pending = self._pending, []
            for start in range(0, len(batch), ACCEPT_CHUNK):
                chunk = batch[start:start + ACCEPT_CHUNK]
                try:
                    with self._write_lock:
                        self._insert_batch(chunk)
                    self.accept_commits += 1
                except BaseException as exc:  # noqa: BLE001 - every waiter of the chunk hears of it
                    for p in chunk:
                        p.error, p.accepted = exc, False
                for p in chunk:
                    p.done.release()

    def _insert_batch(self, batch: list[_Pending]) -> None:
        """Accepts the batch in one statement, its own transaction (autocommit, fsynced): the tasks, a duplicate
        (function, task_id) ignored, and (by the ``task_enqueued`` trigger) their Enqueued events. One statement
        per batch matters: each gives the GIL up, and winning it back from busy request threads costs about a
        millisecond on a loaded host, more than the fsync. Sets each one's ``accepted``."""
        db = self._accept_db
        ids = range(self._next_id, self._next_id + len(batch))
        self._next_id += len(batch)
        values: list[Any] = []
        for task_row, p in zip(ids, batch):
            t = p.task
            values += (task_row, t.function, t.task_id, t.qualifier, t.request_id, int(t.task_mode), t.payload,
                       TaskStatus.ENQUEUED.value, t.max_retries, t.enqueued_ms, t.deadline_ms, t.enqueued_ms)
        inserted = db.execute(f"INSERT OR IGNORE INTO tasks ({_TASK_COLUMNS}) VALUES "
                              + ",".join(["(?,?,?,?,?,?,?,?,?,?,?,?)"] * len(batch)), values).rowcount
        if inserted == len(batch):
            for p in batch:
                p.accepted = True
            return
        # Some were duplicates (rare: only caller-chosen task ids repeat): which ones?
        present = {r[0] for r in db.execute(f"SELECT id FROM tasks WHERE id IN ({','.join('?' * len(batch))})",
                                            list(ids))}
        for task_row, p in zip(ids, batch):
            p.accepted = task_row in present

    def _event(self, task: int, status: TaskStatus, ts_ms: int, detail: str) -> None:
        self._db.execute("INSERT INTO task_events (task, status, ts_ms, detail) VALUES (?,?,?,?)",
                         (task, status.value, ts_ms, detail))

    def _transaction(self):
        return _Tx(self)

    # working -----------------------------------------------------------------------------------------------------
    def next_due_ms(self, busy_functions: Iterable[str] = ()) -> int | None:
        """When the next waiting task of a function not in ``busy_functions`` is due (None: there is none)."""
        sql, args = _heads(busy_functions)
        with self._lock:
            row = self._db.execute(f"{sql} SELECT MIN((SELECT MIN(not_before_ms) FROM tasks WHERE function=heads.fn "
                                   f"AND status=heads.status)) FROM heads", args).fetchone()
        return row[0]

    def claim(self, now_ms: int, busy_functions: Iterable[str] = ()) -> Task | None:
        """Leases the oldest due task of a function not in ``busy_functions`` to this boot (Dequeued). The
        candidate is read without a write transaction (an empty look costs no write); the lease is taken only if
        the row is still waiting, so two workers never both hold one task."""
        sql, args = _heads(busy_functions)
        while True:
            with self._lock:
                row = self._db.execute(
                    f"{sql} {SELECT_TASKS} WHERE id IN (SELECT (SELECT id FROM tasks WHERE function=heads.fn AND "
                    f"status=heads.status AND not_before_ms <= ? ORDER BY not_before_ms, id LIMIT 1) FROM heads) "
                    f"ORDER BY not_before_ms, id LIMIT 1", [*args, now_ms]).fetchone()
            if row is None:
                return None
            with self._transaction():
                cur = self._db.execute("UPDATE tasks SET status=?, lease_owner=? WHERE id=? AND status IN (?, ?)",
                                       (TaskStatus.DEQUEUED.value, self.boot_id, row[0],
                                        *(s.value for s in WAITING)))
                if cur.rowcount:
                    self._event(row[0], TaskStatus.DEQUEUED, now_ms, "")
            if cur.rowcount:
                return Task(*row[:7], TaskStatus.DEQUEUED.value, *row[8:15], self.boot_id, *row[16:])

    def mark_running(self, task: int, instance_id: str, now_ms: int) -> bool:
        """Dequeued -> Running on ``instance_id``; False when a stop came first (the task must not run)."""
        with self._transaction():
            cur = self._db.execute(
                "UPDATE tasks SET status=?, instance_id=?, invocations=invocations+1 WHERE id=? AND status=?",
                (TaskStatus.RUNNING.value, instance_id, task, TaskStatus.DEQUEUED.value))
            if cur.rowcount:
                self._event(task, TaskStatus.RUNNING, now_ms, json.dumps({"instanceId": instance_id}))
        return cur.rowcount > 0

    def retry(self, task: int, *, not_before_ms: int, charged: bool, detail: dict, now_ms: int) -> bool:
        """In hand -> Retrying; False when a stop came first."""
        counter = "function_errors" if charged else "system_retries"
        with self._transaction():
            cur = self._db.execute(
                f"UPDATE tasks SET status=?, {counter}={counter}+1, not_before_ms=?, lease_owner=NULL "
                f"WHERE id=? AND status IN (?, ?)",
                (TaskStatus.RETRYING.value, not_before_ms, task, TaskStatus.DEQUEUED.value, TaskStatus.RUNNING.value))
            if cur.rowcount:
                self._event(task, TaskStatus.RETRYING, now_ms, json.dumps(detail))
        return cur.rowcount > 0

    def finish(self, task: int, status: TaskStatus, *, now_ms: int, detail: dict | None = None,
               result: bytes | None = None, error: str | None = None,
               delivery: tuple[str, bytes] | None = None, charged: bool = False) -> bool:
        """Ends the task (unless it already ended) and queues its destination event in the same transaction."""
        with self._transaction():
            cur = self._db.execute(
                "UPDATE tasks SET status=?, end_ms=?, result=?, error=?, lease_owner=NULL, "
                "function_errors=function_errors+?, destination_status=? WHERE id=? AND status NOT IN (?,?,?,?,?)",
                (status.value, now_ms, result, error, int(charged), "Pending" if delivery else None, task,
                 *(s.value for s in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.STOPPED,
                                     TaskStatus.EXPIRED, TaskStatus.INVALID))))
            if cur.rowcount:
                self._event(task, status, now_ms, json.dumps(detail) if detail else "")
                if delivery:
                    self._db.execute("INSERT INTO deliveries (task, destination, body, next_ms, status) "
                                     "VALUES (?,?,?,?,?)", (task, delivery[0], delivery[1], now_ms, "Pending"))
        return cur.rowcount > 0

    def request_stop(self, function: str, task_id: str, now_ms: int) -> tuple[Task, str] | None:
        """Stops a task: one not yet on an instance becomes Stopped at once; a Running one becomes Stopping (its
        worker ends it).
        Returns the task as it was and the status it now has; None when no such task exists."""
        with self._transaction():
            row = self._db.execute(f"{SELECT_TASKS} WHERE function=? AND task_id=?", (function, task_id)).fetchone()
            if row is None:
                return None
            task = Task(*row)
            status = TaskStatus(task.status)
            if status in WAITING or status == TaskStatus.DEQUEUED:
                # A Dequeued task has not reached an instance (its worker may be waiting for one): it ends now,
                # and its worker's mark_running then fails, so it never runs.
                new = TaskStatus.STOPPED
                self._db.execute("UPDATE tasks SET status=?, end_ms=?, lease_owner=NULL WHERE id=?",
                                 (new.value, now_ms, task.id))
            elif status == TaskStatus.RUNNING:
                new = TaskStatus.STOPPING
                self._db.execute("UPDATE tasks SET status=? WHERE id=?", (new.value, task.id))
            else:
                return task, task.status
            self._event(task.id, new, now_ms, json.dumps({"Reason": "StopAsyncTask"}))
        return task, new.value

    def status_of(self, task: int) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT status FROM tasks WHERE id=?", (task,)).fetchone()
        return row[0] if row else None

    def recover(self, now_ms: int) -> list[Task]:
        """Tasks in hand under an earlier boot: Dequeued ones (never sent) go back to Enqueued; Running ones were
        interrupted mid-call and are retried as a system error (not charged to the attempts); Stopping ones are
        Stopped. Returns the interrupted Running tasks (their instances may still run the old call)."""
        interrupted: list[Task] = []
        with self._transaction():
            rows = self._db.execute(
                f"{SELECT_TASKS} WHERE status IN (?,?,?) AND (lease_owner IS NULL OR lease_owner != ?)",
                [*(s.value for s in IN_HAND), self.boot_id]).fetchall()
            for row in rows:
                task = Task(*row)
                detail = json.dumps({"Error": "AgentRestart"})
                if task.status == TaskStatus.DEQUEUED.value:
                    self._db.execute("UPDATE tasks SET status=?, lease_owner=NULL WHERE id=?",
                                     (TaskStatus.ENQUEUED.value, task.id))
                    self._event(task.id, TaskStatus.ENQUEUED, now_ms, detail)
                elif task.status == TaskStatus.RUNNING.value:
                    self._db.execute("UPDATE tasks SET status=?, lease_owner=NULL, system_retries=system_retries+1,"
                                     " not_before_ms=? WHERE id=?", (TaskStatus.RETRYING.value, now_ms, task.id))
                    self._event(task.id, TaskStatus.RETRYING, now_ms, detail)
                    interrupted.append(task)
                else:
                    self._db.execute("UPDATE tasks SET status=?, end_ms=?, lease_owner=NULL WHERE id=?",
                                     (TaskStatus.STOPPED.value, now_ms, task.id))
                    self._event(task.id, TaskStatus.STOPPED, now_ms, detail)
        return interrupted

    # the outbox --------------------------------------------------------------------------------------------------
    def due_deliveries(self, now_ms: int, limit: int = 50) -> list[Delivery]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, task, destination, body, attempts FROM deliveries WHERE status='Pending' AND next_ms<=? "
                "ORDER BY next_ms LIMIT ?", (now_ms, limit)).fetchall()
        return [Delivery(*r) for r in rows]

    def next_delivery_ms(self) -> int | None:
        with self._lock:
            return self._db.execute("SELECT MIN(next_ms) FROM deliveries WHERE status='Pending'").fetchone()[0]

    def delivery_done(self, delivery: Delivery, status: str, *, error: str | None = None,
                      next_ms: int | None = None) -> None:
        """``status``: Succeeded or Failed (final, copied to the task's destinationStatus), or Pending again."""
        with self._transaction():
            self._db.execute("UPDATE deliveries SET status=?, attempts=attempts+1, last_error=?, next_ms=? WHERE id=?",
                             (status, error, next_ms or 0, delivery.id))
            if status != "Pending":
                self._db.execute("UPDATE tasks SET destination_status=? WHERE id=?", (status, delivery.task))


def _heads(busy_functions: Iterable[str]) -> tuple[str, list[Any]]:
    """``WITH ... heads(fn, status)``: each function with tasks (but the busy ones) and each waiting status. The
    functions are found by skipping through an index (one lookup per function), and each head is then one lookup
    in ``tasks_fn_due``: a claim costs the same with 10 or 100,000 tasks waiting for a function at its slot cap,
    where one scan of the due index would visit every one of them."""
    busy = sorted(set(busy_functions))
    skip = f" AND fn NOT IN ({','.join('?' * len(busy))})" if busy else ""
    sql = ("WITH RECURSIVE fns(fn) AS (SELECT MIN(function) FROM tasks UNION ALL "
           "SELECT (SELECT MIN(function) FROM tasks WHERE function > fns.fn) FROM fns WHERE fns.fn IS NOT NULL), "
           "waiting(status) AS (VALUES (?), (?)), "
           f"heads(fn, status) AS (SELECT fn, status FROM fns, waiting WHERE fn IS NOT NULL{skip})")
    return sql, [*(s.value for s in WAITING), *busy]


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` on the main connection, under the write lock and the connection's lock;
    rolled back on error."""

    def __init__(self, store: TaskStore) -> None:
        self._store = store

    def __enter__(self) -> None:
        self._store._write_lock.acquire()
        self._store._lock.acquire()
        try:
            self._store._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._store._lock.release()
            self._store._write_lock.release()
            raise

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._store._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._store._lock.release()
            self._store._write_lock.release()
