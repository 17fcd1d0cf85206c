"""`fc`: the operator's command line for a fleet. It reads the fleet from a Pulumi stack (--stack) or a fleet file
(--fleet-file, default $FC_LAB_DIR/fleet.json or /var/lib/fc-lab/fleet.json), reaches each agent's control API
through SSH and invokes through a host's invoke port.

    fc invoke NAME [--qualifier Q] [--payload JSON|@file]     fc logs NAME [--request-id ID]
    fc instances NAME                                          fc hosts
    fc invoke NAME --async [--task-id ID]                      fc tasks list|get|stop NAME [TASK_ID]

Invocations are signed (ACS3-HMAC-SHA256) with $ALIBABA_CLOUD_ACCESS_KEY_ID / $ALIBABA_CLOUD_ACCESS_KEY_SECRET, or
with the stack's fc.AccessKey (--stack, --access-key NAME).

Exit codes: 0 ok, 1 the function failed (or nothing was found), 2 bad usage/fleet/stack, 3 a host failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Optional, Sequence

from rich.console import Console
from rich.table import Table

from .._errors import FcProviderError
from . import _ops, _tasks
from ._errors import EXIT_FLEET, EXIT_FUNCTION_ERROR, EXIT_OK, UsageError
from ._source import credentials, default_fleet_file, from_fleet_file, from_stack

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fc", description=__doc__.split("\n\n")[0],
                                epilog="Exit codes: 0 ok, 1 function error or not found, 2 usage, 3 host failure.")
    src = p.add_argument_group("fleet")
    src.add_argument("--stack", help="read the fleet from this Pulumi stack's Fleet resource")
    src.add_argument("--cwd", type=Path, help="the Pulumi project folder for --stack (default: current folder)")
    src.add_argument("--fleet-resource", help="the Fleet's resource name when the stack has several")
    src.add_argument("--access-key", help="sign with this fc.AccessKey of --stack (default: "
                     "$ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET, else the stack's only AccessKey)")
    src.add_argument("--fleet-file", type=Path, help="a fleet file (default $FC_LAB_DIR/fleet.json or "
                     "/var/lib/fc-lab/fleet.json)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub = p.add_subparsers(dest="command", required=True)
    inv = sub.add_parser("invoke", help="invoke a function (on the first host that has it)")
    inv.add_argument("name")
    inv.add_argument("--qualifier", help="version or alias (default LATEST)")
    inv.add_argument("--payload", default="", help="the event: JSON text, or @file to send a file's bytes")
    inv.add_argument("--host", help="invoke on this host only")
    inv.add_argument("--log", action="store_true", help="print the invocation's log tail to stderr")
    inv.add_argument("--async", dest="async_", action="store_true",
                     help="invoke asynchronously: prints the task id once the event is queued (202)")
    inv.add_argument("--task-id", help="with --async: the task id (the function needs task mode)")
    logs = sub.add_parser("logs", help="the function's recent invocation logs, newest first")
    logs.add_argument("name")
    logs.add_argument("--request-id", help="only this invocation")
    logs.add_argument("--host", help="only this host")
    insts = sub.add_parser("instances", help="the function's instances on every host")
    insts.add_argument("name")
    insts.add_argument("--host", help="only this host")
    sub.add_parser("hosts", help="every host: agent health, version, capacity, functions")
    _tasks.add_parser(sub)
    return p


def _connection(args: argparse.Namespace) -> Any:
    if args.stack and args.fleet_file:
        raise UsageError("give either --stack or --fleet-file, not both")
    if args.stack:
        return from_stack(args.stack, args.cwd, args.fleet_resource)
    return from_fleet_file(args.fleet_file or default_fleet_file())


def _payload(text: str) -> bytes:
    if text.startswith("@"):
        try:
            return Path(text[1:]).read_bytes()
        except OSError as exc:
            raise UsageError(f"--payload {text}: cannot read the file: {exc.strerror or exc}") from exc
    return text.encode()


class _Out:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.out = Console(soft_wrap=True)
        self.err = Console(stderr=True, soft_wrap=True)

    def progress(self, message: str) -> Any:
        """A spinner on a terminal while hosts answer; nothing when stderr is piped."""
        return self.err.status(message) if self.err.is_terminal else nullcontext()

    def host_errors(self, errors: dict[str, str]) -> None:
        for host, reason in sorted(errors.items()):
            self.err.print(f"fc: host {host}: {reason}", markup=False, highlight=False)

    def json(self, data: Any) -> None:
        print(json.dumps(data, indent=2, sort_keys=True))

    def table(self, columns: Sequence[str], rows: list[Sequence[Any]]) -> None:
        table = Table(*columns, box=None, pad_edge=False)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        self.out.print(table)


def _invoke(args: argparse.Namespace, conn: Any, out: _Out) -> int:
    hosts = _ops.pick_hosts(conn, args.host)
    if args.task_id and not args.async_:
        raise UsageError("--task-id needs --async")
    extra = {"x-fc-invocation-type": "Async", **({"x-fc-async-task-id": args.task_id} if args.task_id else {})} \
        if args.async_ else {}
    key = credentials(args.stack, args.cwd, args.access_key)
    with out.progress(f"invoking {args.name}..."):
        result = _ops.invoke(conn, hosts, args.name, _payload(args.payload), args.qualifier, key,
                             log_tail=args.log, extra_headers=extra)
    if args.async_:
        task_id = result.headers.get("x-fc-async-task-id")
        if out.as_json:
            out.json({"host": result.host, "status": result.status, "task_id": task_id,
                      "request_id": result.headers.get("x-fc-request-id")})
        else:
            print(task_id)
            out.err.print(f"queued on {result.host} (fc tasks get {args.name} {task_id})", markup=False,
                          highlight=False)
        return EXIT_OK
    if out.as_json:
        out.json({"host": result.host, "status": result.status, "request_id": result.headers.get("x-fc-request-id"),
                  "error_type": result.error_type, "body": result.body.decode(errors="replace"),
                  **({"log": result.log_tail} if args.log else {})})
    else:
        sys.stdout.buffer.write(result.body)
        sys.stdout.flush()
        out.err.print(f"request {result.headers.get('x-fc-request-id')} on {result.host}"
                      + (f": {result.error_type}" if result.error_type else ""), markup=False, highlight=False)
        if args.log and result.log_tail:
            out.err.print(result.log_tail, markup=False, highlight=False, end="")
    return EXIT_FUNCTION_ERROR if result.error_type else EXIT_OK


def _logs(args: argparse.Namespace, conn: Any, out: _Out) -> int:
    hosts = _ops.pick_hosts(conn, args.host)
    with out.progress(f"reading logs of {args.name} from {len(hosts)} host(s)..."):
        entries, errors = _ops.logs(conn, hosts, args.name, args.request_id)
    if out.as_json:
        out.json(entries)
    for e in entries if not out.as_json else []:
        out.out.print(f"{e.get('time')} {e['host']} {e.get('request_id')} {e.get('instance_id')}", markup=False,
                      highlight=False, style="bold")
        out.out.print(e.get("log") or "", markup=False, highlight=False, end="" if (e.get("log") or "\n")
                      .endswith("\n") else "\n")
    out.host_errors(errors)
    if not entries and not errors:
        what = f"request {args.request_id} of {args.name}" if args.request_id else f"function {args.name}"
        out.err.print(f"fc: no logs for {what} on {', '.join(h.name for h in hosts)} (agents keep recent "
                      "invocations in memory)", markup=False, highlight=False)
        return EXIT_FUNCTION_ERROR
    return EXIT_FLEET if errors else EXIT_OK


def _instances(args: argparse.Namespace, conn: Any, out: _Out) -> int:
    hosts = _ops.pick_hosts(conn, args.host)
    with out.progress(f"listing instances of {args.name} on {len(hosts)} host(s)..."):
        rows, errors = _ops.instances(conn, hosts, args.name)
    if out.as_json:
        out.json(rows)
    elif rows:
        # The container id: exact whatever the instance's birth (a stem cell keeps its labels; docs/architecture.md).
        out.table(["HOST", "INSTANCE", "CONTAINER", "STATE", "IN FLIGHT", "RESUMES", "SECONDS"],
                  [[r["host"], r["instance_id"], (r.get("container_id") or "")[:12], r["state"], r.get("in_flight"),
                    r.get("resumes"), r.get("seconds")] for r in rows])
    else:
        out.err.print(f"fc: no instances of {args.name} (scaled to zero, or not deployed)", markup=False,
                      highlight=False)
    out.host_errors(errors)
    return EXIT_FLEET if errors else EXIT_OK


def _hosts(args: argparse.Namespace, conn: Any, out: _Out) -> int:
    with out.progress(f"asking {len(conn.hosts)} host(s)..."):
        rows, errors = _ops.hosts(conn)
    if out.as_json:
        out.json(rows)
    else:
        def amount(d: Optional[dict]) -> str:
            return "" if not d else f"{d.get('cpu')} cpu / {d.get('memory_mb')} MB"

        out.table(["HOST", "ADDRESS", "AGENT", "VERSION", "CAPACITY", "COMMITTED", "GPUS", "FUNCTIONS"],
                  [[r["name"], r["address"], r["agent"], r["version"], amount(r["capacity"]), amount(r["committed"]),
                    _ops.gpu_summary(r.get("gpus")), ", ".join(r["functions"])] for r in rows])
    out.host_errors(errors)
    return EXIT_FLEET if errors else EXIT_OK


COMMANDS = {"invoke": _invoke, "logs": _logs, "instances": _instances, "hosts": _hosts, "tasks": _tasks.run}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    out = _Out(args.json)
    try:
        return COMMANDS[args.command](args, _connection(args), out)
    except FcProviderError as exc:
        out.err.print(f"fc: {exc}", markup=False, highlight=False)
        return getattr(exc, "exit_code", EXIT_FLEET)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
