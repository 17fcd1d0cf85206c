"""The rows of the async queue's SQLite file (``tasks.db``): its schema and the records read from it."""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY,
    function TEXT NOT NULL, task_id TEXT NOT NULL, qualifier TEXT NOT NULL, request_id TEXT NOT NULL,
    task_mode INTEGER NOT NULL, payload BLOB NOT NULL, status TEXT NOT NULL,
    invocations INTEGER NOT NULL DEFAULT 0, function_errors INTEGER NOT NULL DEFAULT 0,
    system_retries INTEGER NOT NULL DEFAULT 0, max_retries INTEGER NOT NULL,
    enqueued_ms INTEGER NOT NULL, deadline_ms INTEGER NOT NULL, not_before_ms INTEGER NOT NULL,
    lease_owner TEXT, instance_id TEXT, end_ms INTEGER, result BLOB, error TEXT, destination_status TEXT,
    UNIQUE (function, task_id)
);
CREATE INDEX IF NOT EXISTS tasks_due ON tasks (status, not_before_ms);
CREATE INDEX IF NOT EXISTS tasks_by_time ON tasks (function, enqueued_ms);
CREATE INDEX IF NOT EXISTS tasks_fn_due ON tasks (function, status, not_before_ms);  -- claims: see _heads
CREATE TABLE IF NOT EXISTS task_events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT, task INTEGER NOT NULL, status TEXT NOT NULL,
    ts_ms INTEGER NOT NULL, detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS task_events_of ON task_events (task);
-- A task's first event is written by SQLite in the INSERT that accepts it: a batch of accepted events is then one
-- statement (see TaskStore._insert_batch).
CREATE TRIGGER IF NOT EXISTS task_enqueued AFTER INSERT ON tasks BEGIN
    INSERT INTO task_events (task, status, ts_ms, detail) VALUES (NEW.id, NEW.status, NEW.enqueued_ms, '');
END;
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY, task INTEGER NOT NULL, destination TEXT NOT NULL, body BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_ms INTEGER NOT NULL, status TEXT NOT NULL, last_error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_ms);
CREATE TABLE IF NOT EXISTS async_configs (
    function TEXT NOT NULL, qualifier TEXT NOT NULL, config TEXT NOT NULL,
    created_ms INTEGER NOT NULL, modified_ms INTEGER NOT NULL, PRIMARY KEY (function, qualifier)
);
"""

COLUMNS = ("id", "function", "task_id", "qualifier", "request_id", "task_mode", "payload", "status", "invocations",
           "function_errors", "system_retries", "max_retries", "enqueued_ms", "deadline_ms", "not_before_ms",
           "lease_owner", "instance_id", "end_ms", "result", "error", "destination_status")
SELECT_TASKS = f"SELECT {', '.join(COLUMNS)} FROM tasks"


@dataclass(frozen=True)
class NewTask:
    function: str
    task_id: str
    qualifier: str
    request_id: str
    task_mode: bool
    payload: bytes
    max_retries: int
    enqueued_ms: int
    deadline_ms: int


@dataclass(frozen=True)
class Task:
    id: int
    function: str
    task_id: str
    qualifier: str
    request_id: str
    task_mode: int
    payload: bytes
    status: str
    invocations: int
    function_errors: int
    system_retries: int
    max_retries: int
    enqueued_ms: int
    deadline_ms: int
    not_before_ms: int
    lease_owner: str | None
    instance_id: str | None
    end_ms: int | None
    result: bytes | None
    error: str | None
    destination_status: str | None


@dataclass(frozen=True)
class Delivery:
    id: int
    task: int
    destination: str
    body: bytes
    attempts: int
