"""The task records of the JetStream queue (natsqueue.py): one JSON value per task in the KV bucket
``fc-task-records``, key ``<function>.<task id>`` (FC's task ids and function names are valid key tokens), holding
what SQLite's ``tasks`` row, its ``task_events`` and its pending delivery hold; and the transitions as pure
functions on that value (the queue writes each with a compare-and-set on the entry's revision, so one writer wins).

The transitions mirror ``TaskStore``'s SQL statement by statement: the same guards, counters and events, so a task
reads the same through the API whichever backend holds it."""

from __future__ import annotations

import base64
import json
from typing import Any

from .states import IN_HAND, TERMINAL, WAITING, TaskStatus
from .taskrows import NewTask, Task

MAX_RESULT_BYTES = 512 * 1024  # a record is one NATS message (1 MB max_payload): the payload (128 KB) + this, base64
TERMINAL_VALUES = frozenset(s.value for s in TERMINAL)
WAITING_VALUES = frozenset(s.value for s in WAITING)
IN_HAND_VALUES = frozenset(s.value for s in IN_HAND)


def key_of(function: str, task_id: str) -> str:
    return f"{function}.{task_id}"


def new_record(task: NewTask) -> dict[str, Any]:
    return {"function": task.function, "task_id": task.task_id, "qualifier": task.qualifier,
            "request_id": task.request_id, "task_mode": int(task.task_mode),
            "payload": base64.b64encode(task.payload).decode(), "status": TaskStatus.ENQUEUED.value,
            "invocations": 0, "function_errors": 0, "system_retries": 0, "max_retries": task.max_retries,
            "enqueued_ms": task.enqueued_ms, "deadline_ms": task.deadline_ms, "not_before_ms": task.enqueued_ms,
            "lease_owner": None, "host": None, "instance_id": None, "end_ms": None, "result": None, "error": None,
            "destination_status": None, "delivery": None,
            "events": [{"eventId": 1, "status": TaskStatus.ENQUEUED.value, "timestamp": task.enqueued_ms,
                        "eventDetail": ""}]}


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()


def decode(value: bytes) -> dict[str, Any]:
    return json.loads(value)


def to_task(record: dict[str, Any]) -> Task:
    result = record["result"]
    return Task(key_of(record["function"], record["task_id"]), record["function"], record["task_id"],  # type: ignore[arg-type]
                record["qualifier"], record["request_id"], record["task_mode"],
                base64.b64decode(record["payload"]), record["status"], record["invocations"],
                record["function_errors"], record["system_retries"], record["max_retries"], record["enqueued_ms"],
                record["deadline_ms"], record["not_before_ms"], record["lease_owner"], record["instance_id"],
                record["end_ms"], base64.b64decode(result) if result is not None else None, record["error"],
                record["destination_status"])


def _event(record: dict[str, Any], status: TaskStatus, ts_ms: int, detail: str) -> None:
    events = record["events"]
    events.append({"eventId": (events[-1]["eventId"] + 1) if events else 1, "status": status.value,
                   "timestamp": ts_ms, "eventDetail": detail})


# transitions: each returns True when it changed the record (the caller then writes it) -----------------------------
def claim(record: dict[str, Any], boot_id: str, host: str, now_ms: int) -> bool:
    if record["status"] not in WAITING_VALUES:
        return False
    record.update(status=TaskStatus.DEQUEUED.value, lease_owner=boot_id, host=host)
    _event(record, TaskStatus.DEQUEUED, now_ms, "")
    return True


def _held_by(record: dict[str, Any], owner: str) -> bool:
    """Only the boot that holds a task moves it on: a host cut off past its lease, whose task another host took,
    must not end the task under the new holder when it comes back (its writes are refused; it ran at least once)."""
    return record["lease_owner"] == owner


def run(record: dict[str, Any], owner: str, instance_id: str, now_ms: int) -> bool:
    if record["status"] != TaskStatus.DEQUEUED.value or not _held_by(record, owner):
        return False
    record.update(status=TaskStatus.RUNNING.value, instance_id=instance_id, invocations=record["invocations"] + 1)
    _event(record, TaskStatus.RUNNING, now_ms, json.dumps({"instanceId": instance_id}))
    return True


def retry(record: dict[str, Any], owner: str, *, not_before_ms: int, charged: bool, detail: dict, now_ms: int) -> bool:
    if record["status"] not in (TaskStatus.DEQUEUED.value, TaskStatus.RUNNING.value) or not _held_by(record, owner):
        return False
    counter = "function_errors" if charged else "system_retries"
    record.update(status=TaskStatus.RETRYING.value, not_before_ms=not_before_ms, lease_owner=None)
    record[counter] += 1
    _event(record, TaskStatus.RETRYING, now_ms, json.dumps(detail))
    return True


def finish(record: dict[str, Any], owner: str, status: TaskStatus, *, now_ms: int, detail: dict | None,
           result: bytes | None, error: str | None, delivery: tuple[str, bytes] | None, charged: bool) -> bool:
    if record["status"] in TERMINAL_VALUES or not _held_by(record, owner):
        return False
    record.update(status=status.value, end_ms=now_ms, error=error, lease_owner=None,
                  result=base64.b64encode(result[:MAX_RESULT_BYTES]).decode() if result is not None else None,
                  function_errors=record["function_errors"] + int(charged),
                  destination_status="Pending" if delivery else None,
                  delivery={"destination": delivery[0], "body": base64.b64encode(delivery[1]).decode(),
                            "published": False} if delivery else None)
    _event(record, status, now_ms, json.dumps(detail) if detail else "")
    return True


def stop(record: dict[str, Any], now_ms: int) -> str | None:
    """StopAsyncTask's transition (TaskStore.request_stop's): the new status, or None when it does not apply."""
    status = record["status"]
    if status in WAITING_VALUES or status == TaskStatus.DEQUEUED.value:
        new = TaskStatus.STOPPED  # not on an instance yet: it never runs (its holder's mark_running fails)
        record.update(status=new.value, end_ms=now_ms, lease_owner=None)
    elif status == TaskStatus.RUNNING.value:
        new = TaskStatus.STOPPING  # its holder's heartbeat sees it and ends the instance
        record.update(status=new.value)
    else:
        return None
    _event(record, new, now_ms, json.dumps({"Reason": "StopAsyncTask"}))
    return new.value


def recover(record: dict[str, Any], now_ms: int, reason: str) -> str:
    """A task found in hand when its message came back (its holder's lease, the ack wait, ran out: the holder's
    agent or host is gone or cut off): TaskStore.recover's rule. Returns the status it had."""
    status = record["status"]
    detail = json.dumps({"Error": reason})
    if status == TaskStatus.DEQUEUED.value:
        record.update(status=TaskStatus.ENQUEUED.value, lease_owner=None)
        _event(record, TaskStatus.ENQUEUED, now_ms, detail)
    elif status == TaskStatus.RUNNING.value:
        record.update(status=TaskStatus.RETRYING.value, lease_owner=None, not_before_ms=now_ms,
                      system_retries=record["system_retries"] + 1)
        _event(record, TaskStatus.RETRYING, now_ms, detail)
    elif status == TaskStatus.STOPPING.value:
        record.update(status=TaskStatus.STOPPED.value, end_ms=now_ms, lease_owner=None)
        _event(record, TaskStatus.STOPPED, now_ms, detail)
    return status


def matches(record: dict[str, Any], *, prefix: str | None, status: str | None, begin_ms: int | None,
            end_ms: int | None, qualifier: str | None) -> bool:
    return ((not qualifier or record["qualifier"] == qualifier)
            and (not prefix or record["task_id"].startswith(prefix))
            and (not status or record["status"] == status)
            and (begin_ms is None or record["enqueued_ms"] >= begin_ms)
            and (end_ms is None or record["enqueued_ms"] <= end_ms))
