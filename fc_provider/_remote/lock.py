"""The fleet's deploy lock, Kamal style: an atomic ``mkdir`` of ``/var/lib/fc-agent/deploy.lock`` on each host, with
a ``holder.json`` that says who holds it (stack, user, machine, pid, operation) and since when.

Granularity. Every provider operation that changes hosts (a Fleet install, upgrade or removal, a Function deploy or
removal) takes the lock on the hosts it touches and releases it when it ends, on error too. So two stacks never
change the same host at once (e.g. one restarting the agent while the other deploys a function), while each
stack's own resource operations still run in parallel: the lock is held per provider *process* (one `pulumi up`),
re-entrant and reference-counted, so operations of the same `pulumi up` share it instead of queueing behind each
other. Two stacks' deploys interleave at resource boundaries; none waits for the other's whole `pulumi up`.

Deadlocks. An operation takes its hosts in one global order (address, port) and only ever waits for a host later
in that order than every host it holds, so no cycle of waits can form, across processes or within one.

Waiting. A held lock is retried until ``lock_timeout_seconds`` (FleetArgs) runs out, then the operation fails with
DeployLocked naming the holder and since when. A lock left by a process that no longer runs on this very machine
(same hostname and boot id, pid gone or reused) is broken automatically; any other stale lock is broken with
``break_lock`` (the ``fc`` CLI calls it) or ``rm -rf /var/lib/fc-agent/deploy.lock`` on the host.

Unreachable hosts are not locked: the operation's own work on them fails with the host's name and the reason, and
the other hosts' results stand.
"""

from __future__ import annotations

import getpass
import json
import os
import random
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from .._errors import AuthenticationFailed, DeployLocked, HostKeyMismatch, HostUnreachable, RemoteCommandFailed
from . import commands as cmd
from . import pool as _pool
from .ssh import HostSpec

DEFAULT_TIMEOUT_SECONDS = 120.0
_RETRY_SECONDS = (0.5, 2.0)  # jittered, so two waiters do not retry in lockstep
_PROCESS_ID = uuid.uuid4().hex  # who "we" are on every host: this provider process


@dataclass
class _HostState:
    mutex: threading.Lock = field(default_factory=threading.Lock)
    refs: int = 0


_REGISTRY: dict[tuple[str, int], _HostState] = {}
_REGISTRY_LOCK = threading.Lock()


def _state(host: HostSpec) -> _HostState:
    with _REGISTRY_LOCK:
        return _REGISTRY.setdefault((host.address, host.port), _HostState())


@contextmanager
def fleet_lock(private_key: str, hosts: Iterable[HostSpec], *, operation: str, stack: str = "",
               timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Iterator[None]:
    """Holds the deploy lock of every reachable host in ``hosts`` for the duration of the block."""
    taken: list[HostSpec] = []
    deadline = time.monotonic() + timeout
    unique = {(h.address, h.port): h for h in hosts}
    try:
        for _, host in sorted(unique.items()):
            if _acquire(private_key, host, _holder(operation, stack), deadline, timeout):
                taken.append(host)
        yield
    finally:
        for host in reversed(taken):
            _release(private_key, host)


def _acquire(private_key: str, host: HostSpec, holder: dict[str, Any], deadline: float, timeout: float) -> bool:
    state = _state(host)
    with state.mutex:
        if state.refs:
            state.refs += 1
            return True
        try:
            _take(private_key, host, holder, deadline, timeout)
        except (HostUnreachable, HostKeyMismatch, AuthenticationFailed):
            return False  # the operation's own work on this host reports why, and the other hosts go on
        state.refs = 1
        return True


def _take(private_key: str, host: HostSpec, holder: dict[str, Any], deadline: float, timeout: float) -> None:
    record = json.dumps(holder, sort_keys=True).encode()
    with _pool.session(host, private_key) as ssh:
        while True:
            result = ssh.run(cmd.take_lock(), stdin=record, check=False)
            if result.exit_status == 0:
                return
            if result.exit_status != cmd.LOCK_HELD_STATUS:
                raise RemoteCommandFailed(host.name, cmd.take_lock(), result.exit_status, result.stderr)
            current = _parse(result.stdout)
            if current.get("process") == _PROCESS_ID:
                return  # ours, left by a release that could not reach the host: take it over
            if _abandoned(current):
                ssh.run(cmd.break_lock())
                continue
            if time.monotonic() >= deadline:
                raise DeployLocked(host.name, describe(current), timeout)
            time.sleep(min(random.uniform(*_RETRY_SECONDS), max(0.0, deadline - time.monotonic())))


def _release(private_key: str, host: HostSpec) -> None:
    state = _state(host)
    with state.mutex:
        state.refs -= 1
        if state.refs > 0:
            return
        try:
            with _pool.session(host, private_key) as ssh:
                ssh.run(cmd.release_lock(_PROCESS_ID))
        except (HostUnreachable, HostKeyMismatch, AuthenticationFailed, RemoteCommandFailed):
            # Raising here would hide the operation's own outcome; the lock stays until it is broken (automatically
            # by the next deploy from this machine, since this process will be gone).
            pass


def read_holder(private_key: str, host: HostSpec) -> dict[str, Any] | None:
    """The holder record of ``host``'s deploy lock, or None when it is free."""
    with _pool.session(host, private_key) as ssh:
        out = ssh.run(cmd.read_lock()).stdout
    return _parse(out) if out.strip() else None


def break_lock(private_key: str, host: HostSpec) -> dict[str, Any] | None:
    """Removes ``host``'s deploy lock whoever holds it; returns the record of the holder it removed (None: free).
    Only for a lock whose deploy is known to be gone (killed, machine lost)."""
    with _pool.session(host, private_key) as ssh:
        out = ssh.run(cmd.read_lock()).stdout
        ssh.run(cmd.break_lock())
    return _parse(out) if out.strip() else None


def describe(holder: dict[str, Any]) -> str:
    """"stack p/s (alice@build-1, pid 42) for deploy of function f since 2026-11-29T07:00:00Z (35s ago)"."""
    if not holder:
        return "an unknown holder (no holder record: a deploy being taken, or one killed while taking it)"
    since = holder.get("since", "?")
    ago = ""
    if isinstance(holder.get("since_epoch"), (int, float)):
        ago = f" ({max(0, time.time() - holder['since_epoch']):.0f}s ago)"
    return (f"stack {holder.get('stack') or '(unknown)'} ({holder.get('user', '?')}@{holder.get('machine', '?')}, "
            f"pid {holder.get('pid', '?')}) for {holder.get('operation', '?')} since {since}{ago}")


def _holder(operation: str, stack: str) -> dict[str, Any]:
    now = time.time()
    return {"process": _PROCESS_ID, "stack": stack, "user": _user(), "machine": socket.gethostname(),
            "boot_id": _boot_id(), "pid": os.getpid(), "pid_start": _process_start(os.getpid()),
            "operation": operation, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "since_epoch": round(now, 3)}


def _abandoned(holder: dict[str, Any]) -> bool:
    """A holder on this very machine whose process is gone (or whose pid now belongs to another process)."""
    if not holder or holder.get("machine") != socket.gethostname() or holder.get("boot_id") != _boot_id():
        return False
    pid = holder.get("pid")
    if holder.get("process") == _PROCESS_ID or not isinstance(pid, int):
        return False
    return _process_start(pid) != holder.get("pid_start")


def _parse(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat); None if it does not run."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])
