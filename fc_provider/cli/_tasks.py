"""`fc tasks list|get|stop`: a function's asynchronous tasks on every host that runs it (tasks live in the queue
of the host that accepted them, so the CLI asks each host and merges the answers)."""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from .._errors import AgentAPIError
from . import _ops
from ._errors import EXIT_FLEET, EXIT_FUNCTION_ERROR, EXIT_OK, NotFound, UsageError

STATUSES = ("Enqueued", "Dequeued", "Running", "Retrying", "Stopping", "Succeeded", "Failed", "Stopped", "Expired",
            "Invalid")


def add_parser(sub: Any) -> None:
    tasks = sub.add_parser("tasks", help="a function's asynchronous tasks: list, get, stop")
    verbs = tasks.add_subparsers(dest="verb", required=True)
    ls = verbs.add_parser("list", help="the function's tasks on every host, oldest first")
    ls.add_argument("name")
    ls.add_argument("--status", choices=STATUSES, help="only tasks in this state")
    ls.add_argument("--prefix", help="only task ids that start with this")
    ls.add_argument("--limit", type=int, default=20, help="at most this many per host (1-100, default 20)")
    ls.add_argument("--desc", action="store_true", help="newest first")
    ls.add_argument("--host", help="only this host")
    for verb, text in (("get", "one task with its events"), ("stop", "stop a task (a queued one never runs)")):
        p = verbs.add_parser(verb, help=text)
        p.add_argument("name")
        p.add_argument("task_id")
        p.add_argument("--host", help="only this host")


def _ms(value: Any) -> str:
    if not isinstance(value, int):
        return ""
    return datetime.datetime.fromtimestamp(value / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def run(args: argparse.Namespace, conn: Any, out: Any) -> int:
    if args.verb == "list" and not 1 <= args.limit <= 100:
        raise UsageError("--limit must be between 1 and 100")
    hosts = _ops.pick_hosts(conn, args.host)
    if args.verb == "list":
        query = {"status": args.status, "prefix": args.prefix, "limit": args.limit,
                 "sortOrderByTime": "desc" if args.desc else "asc"}
        found = _ops.query(conn, hosts, lambda agent: agent.list_tasks(args.name, **query)["tasks"])
        rows = sorted(({**t, "host": h} for h, tasks in found.results.items() for t in tasks),
                      key=lambda t: (t.get("startedTime") or 0, t["taskId"]), reverse=args.desc)
        if out.as_json:
            out.json(rows)
        else:
            out.table(["HOST", "TASK", "STATUS", "STARTED", "ENDED", "RETRIES", "ERROR"],
                      [[t["host"], t["taskId"], t["status"], _ms(t.get("startedTime")), _ms(t.get("endTime")),
                        t.get("alreadyRetriedTimes"), t.get("taskErrorMessage")] for t in rows])
        out.host_errors(found.errors)
        return EXIT_FLEET if found.errors else EXIT_OK

    def on_host(agent: Any) -> Any:
        try:
            if args.verb == "stop":
                agent.stop_task(args.name, args.task_id)
            return agent.get_task(args.name, args.task_id)
        except AgentAPIError as exc:
            if exc.status == 404:
                return None
            raise

    found = _ops.query(conn, hosts, on_host)
    tasks = {h: t for h, t in found.results.items() if t is not None}
    out.host_errors(found.errors)
    if not tasks:
        if found.errors:
            return EXIT_FLEET
        raise NotFound(f"no task {args.task_id} of function {args.name} on {', '.join(h.name for h in hosts)}")
    if out.as_json:
        out.json([{**t, "host": h} for h, t in sorted(tasks.items())])
        return EXIT_OK
    for host, t in sorted(tasks.items()):
        out.out.print(f"{t['taskId']} on {host}: {t['status']}" + (f" ({t['taskErrorMessage']})"
                      if t.get("taskErrorMessage") else ""), markup=False, highlight=False, style="bold")
        out.table(["EVENT", "STATUS", "TIME", "DETAIL"],
                  [[e["eventId"], e["status"], _ms(e["timestamp"]), e.get("eventDetail")] for e in t["events"]])
        if t.get("returnPayload"):
            out.out.print(f"result: {t['returnPayload']}", markup=False, highlight=False)
    failed = any(t["status"] in ("Failed", "Expired", "Invalid") for t in tasks.values())
    return EXIT_FUNCTION_ERROR if failed and args.verb == "get" else EXIT_OK
