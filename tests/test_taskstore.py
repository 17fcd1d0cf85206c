"""The async queue's SQLite store and retry policy on their own (real SQLite files, no agent): group commit and
dedupe, leases of another boot recovered as FC would, one claim per task among racing workers, retention, and
the retry decisions."""

from __future__ import annotations

import threading
from pathlib import Path

from runtime_agent.events.retry import Outcome, RetryPolicy, Step
from runtime_agent.events.states import TaskStatus
from runtime_agent.events.taskstore import NewTask, TaskStore

DAY_MS = 24 * 3600 * 1000


def _task(task_id: str, now: int = 1_000) -> NewTask:
    return NewTask("fn", task_id, "LATEST", f"req-{task_id}", True, b"{}", 3, now, now + DAY_MS)


def test_concurrent_enqueues_share_commits_and_a_repeated_id_is_refused(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "tasks.db", "boot-1")
    try:
        results: list[bool] = []
        threads = [threading.Thread(target=lambda i=i: results.append(store.enqueue(_task(f"t{i % 50}"))))
                   for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(True) == 50 and results.count(False) == 50  # each id accepted once
        assert store.accept_commits < 100  # requests arriving during a commit went into the next one together
        assert [e["status"] for e in store.events(store.get("fn", "t7").id)] == ["Enqueued"]
    finally:
        store.close()


def test_a_reopened_store_goes_on_numbering_and_each_accepted_task_has_one_enqueued_event(tmp_path: Path) -> None:
    """The committer hands out row ids itself (one multi-row INSERT per batch): after a restart it must go on
    after the last one, and the trigger must give each accepted task, and no duplicate, its Enqueued event."""
    first = TaskStore(tmp_path / "tasks.db", "boot-1")
    try:
        assert first.enqueue(_task("a")) and first.enqueue(_task("b"))
    finally:
        first.close()
    second = TaskStore(tmp_path / "tasks.db", "boot-2")
    try:
        outcomes = {}
        threads = [threading.Thread(target=lambda t=t: outcomes.__setitem__(t, second.enqueue(_task(t))))
                   for t in ("a", "c", "d", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes == {"a": False, "b": False, "c": True, "d": True}
        rows = [second.get("fn", t) for t in "abcd"]
        assert len({r.id for r in rows}) == 4
        for row in rows:
            assert [e["status"] for e in second.events(row.id)] == ["Enqueued"]
    finally:
        second.close()


def test_racing_workers_claim_each_task_once(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "tasks.db", "boot-1")
    try:
        for i in range(40):
            store.enqueue(_task(f"t{i}"))
        claimed: list[str] = []

        def worker() -> None:
            while (task := store.claim(2_000)) is not None:
                claimed.append(task.task_id)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(claimed) == sorted(f"t{i}" for i in range(40))
    finally:
        store.close()


def test_a_new_boot_recovers_what_the_old_one_had_in_hand(tmp_path: Path) -> None:
    old = TaskStore(tmp_path / "tasks.db", "boot-1")
    for task_id in ("queued", "claimed", "running", "stopping", "done"):
        old.enqueue(_task(task_id))
    by_id = {}
    while len(by_id) < 4 and (task := old.claim(2_000)) is not None:
        by_id[task.task_id] = task
    assert set(by_id) == {"queued", "claimed", "running", "stopping"}  # claimed in order; "done" left waiting
    old.mark_running(by_id["running"].id, "inst-1", 2_100)
    old.mark_running(by_id["stopping"].id, "inst-2", 2_100)
    old.request_stop("fn", "stopping", 2_200)
    old.finish(by_id["queued"].id, TaskStatus.SUCCEEDED, now_ms=2_300)
    old.close()  # the agent dies here (the store's file is all that is left)

    new = TaskStore(tmp_path / "tasks.db", "boot-2")
    try:
        interrupted = new.recover(3_000)
        assert [t.task_id for t in interrupted] == ["running"] and interrupted[0].instance_id == "inst-1"
        status = {t: new.get("fn", t).status for t in ("queued", "claimed", "running", "stopping", "done")}
        assert status == {"queued": "Succeeded", "claimed": "Enqueued", "running": "Retrying",
                          "stopping": "Stopped", "done": "Enqueued"}
        running = new.get("fn", "running")
        assert running.system_retries == 1 and running.function_errors == 0  # not charged to the attempts
        assert new.events(running.id)[-1]["eventDetail"] == '{"Error": "AgentRestart"}'
        assert new.recover(3_100) == []  # idempotent: nothing of another boot is left in hand
    finally:
        new.close()


def test_ended_tasks_are_forgotten_after_retention_with_their_events(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "tasks.db", "boot-1")
    try:
        store.enqueue(_task("old"))
        store.enqueue(_task("open"))
        old = store.claim(2_000)
        store.finish(old.id, TaskStatus.FAILED, now_ms=2_000, delivery=("http://127.0.0.1:1/hook", b"{}"))
        assert store.purge(10 * DAY_MS) == 0  # its destination event is still pending: kept
        (delivery,) = store.due_deliveries(3_000)
        store.delivery_done(delivery, "Failed", error="refused")
        assert store.get("fn", "old").destination_status == "Failed"
        assert store.purge(2_000) == 0 and store.purge(2_001) == 1
        assert store.get("fn", "old") is None and store.events(old.id) == []
        assert store.get("fn", "open") is not None  # a task that has not ended is never purged
    finally:
        store.close()


def test_retry_policy_follows_fcs_rules() -> None:
    policy = RetryPolicy()
    args = {"max_retries": 2, "system_retries": 0, "now_ms": 0, "deadline_ms": 3_600_000}
    first = policy.decide(Outcome.FUNCTION_ERROR, function_errors=0, **args)
    assert first.step is Step.RETRY and first.charged and first.delay_s == 1
    assert policy.decide(Outcome.FUNCTION_ERROR, function_errors=1, **args).delay_s == 2
    assert policy.decide(Outcome.FUNCTION_ERROR, function_errors=2, **args).step is Step.FAIL
    throttled = [policy.decide(Outcome.THROTTLED, function_errors=0, **{**args, "system_retries": n})
                 for n in range(12)]
    assert [d.delay_s for d in throttled[:4]] == [0.5, 1, 2, 4] and not any(d.charged for d in throttled)
    assert throttled[-1].delay_s == 300  # capped at 5 minutes
    near_deadline = {**args, "now_ms": 3_599_900}
    assert policy.decide(Outcome.SYSTEM_ERROR, function_errors=0, **near_deadline).step is Step.EXPIRE
    assert policy.decide(Outcome.GONE, function_errors=0, **args).step is Step.INVALID
    assert policy.decide(Outcome.SUCCESS, function_errors=0, **args).step is Step.SUCCEED


def test_the_sqlite_store_implements_the_queue_interface_with_its_signatures(tmp_path: Path) -> None:
    """Every backend implements taskqueue.TaskQueue; the SQLite store is checked method by method, parameter
    names and kinds included, so the interface and the default backend cannot drift apart."""
    import inspect

    from runtime_agent.events.taskqueue import TaskQueue

    store = TaskStore(tmp_path / "tasks.db", "boot-1")
    try:
        assert isinstance(store, TaskQueue)
        for name, member in vars(TaskQueue).items():
            if callable(member) and not name.startswith("_"):
                wanted = [(p.name, p.kind) for p in inspect.signature(member).parameters.values()]
                got = [(p.name, p.kind) for p in inspect.signature(getattr(TaskStore, name)).parameters.values()]
                assert got == wanted, name
    finally:
        store.close()


def test_an_unexpected_error_while_running_is_a_system_retry_not_a_task_left_in_hand(tmp_path: Path) -> None:
    """A run that raises something that is not one of the agent's errors (seen: a container that would not start
    because its function was being deleted) must not leave the task Dequeued until the next restart."""
    import time as clock

    from runtime_agent.events.runner import PoolPressure, RunResult
    from runtime_agent.events.workers import Workers

    class FailsOnce:  # the Runner interface; the first run fails the way a vanished code folder made it fail
        runs = 0

        def function_exists(self, name: str) -> bool:
            return True

        def pressure(self, name: str | None = None) -> dict:
            return {"fn": PoolPressure(4, 0)}

        def run_task(self, name, body, *, request_id, task_id, qualifier, on_instance):
            FailsOnce.runs += 1
            on_instance("i-1")
            if FailsOnce.runs == 1:
                raise FileNotFoundError("/var/lib/fc-agent/code/abc")
            return RunResult(200, {}, b"ok")

        def end_instance(self, name: str, instance_id: str) -> bool:
            return False

    store = TaskStore(tmp_path / "tasks.db", "boot-1")
    now_ms = lambda: int(clock.time() * 1000)  # noqa: E731
    workers = Workers(store, FailsOnce(), count=1, policy=RetryPolicy(), clock_ms=now_ms, on_retry=lambda t, c: None,
                      on_end=lambda t, status, info: store.finish(t.id, status, now_ms=now_ms()))
    try:
        store.enqueue(NewTask("fn", "t1", "LATEST", "req-1", True, b"{}", 3, now_ms(), now_ms() + DAY_MS))
        workers.start()
        deadline = clock.monotonic() + 30
        while store.get("fn", "t1").status != "Succeeded" and clock.monotonic() < deadline:
            clock.sleep(0.05)
        task = store.get("fn", "t1")
        assert task.status == "Succeeded" and task.system_retries == 1 and task.function_errors == 0
        assert [e["status"] for e in store.events(task.id)] == ["Enqueued", "Dequeued", "Running", "Retrying",
                                                                 "Dequeued", "Running", "Succeeded"]
    finally:
        workers.stop()
        store.close()


def test_claims_skip_the_backlog_of_a_busy_function_and_take_the_oldest_due_task(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "tasks.db", "boot-1")
    try:
        for i in range(300):  # a backlog of a function at its slot cap
            store.enqueue(NewTask("held", f"h{i}", "LATEST", f"rh{i}", True, b"{}", 3, 1_000 + i, DAY_MS))
        store.enqueue(NewTask("other", "o-late", "LATEST", "ro1", True, b"{}", 3, 5_000, DAY_MS))
        store.enqueue(NewTask("other", "o-early", "LATEST", "ro2", True, b"{}", 3, 4_000, DAY_MS))
        store.enqueue(NewTask("future", "f", "LATEST", "rf", True, b"{}", 3, 9_000, DAY_MS))
        assert store.next_due_ms({"held"}) == 4_000
        assert store.claim(8_000, {"held"}).task_id == "o-early"
        assert store.claim(8_000, {"held"}).task_id == "o-late"
        assert store.claim(8_000, {"held"}) is None  # "future" is not due yet, "held" is busy
        assert store.next_due_ms({"held"}) == 9_000
        assert store.claim(8_000).task_id == "h0"  # nothing busy: the oldest due task of all
        assert store.next_due_ms({"future"}) == 1_001 and store.next_due_ms({"held", "future"}) is None
    finally:
        store.close()
