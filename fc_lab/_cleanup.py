"""Finding and removing what a host left behind: its processes and its dockerd's cgroups.

Processes are found three ways, because each misses something after a crash:
by mount namespace (dockerd, containerd, shims, SSH sessions), by network namespace
(anything started with ``ip netns exec``), and by the cgroup parent dockerd gave its
containers (container processes have their own namespaces). Frozen cgroups are thawed
first, since SIGKILL does not take effect on a frozen task.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from . import _proc

CGROUP_ROOT = Path("/sys/fs/cgroup")


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None if pid is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def same_process(pid: int, started: int) -> bool:
    """True if pid is alive and is the very process recorded (guards against pid reuse after a reboot)."""
    return _proc.alive(pid) and start_time(pid) == started


def ns_link(pid: int, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _all_pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def pids_in_namespaces(*, mnt: str | None, net_inode: int | None, exclude: set[int]) -> set[int]:
    """Pids whose mount ns link equals mnt or whose net ns inode equals net_inode."""
    net = f"net:[{net_inode}]" if net_inode is not None else None
    found: set[int] = set()
    me = os.getpid()
    for pid in _all_pids():
        if pid in exclude or pid == me:
            continue
        if (mnt is not None and ns_link(pid, "mnt") == mnt) or (net is not None and ns_link(pid, "net") == net):
            found.add(pid)
    return found


def cgroup_roots() -> list[Path]:
    """Hierarchy roots: each v1 controller folder, or the single v2 root."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    try:
        return sorted(p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def _walk_bottom_up(top: Path) -> list[Path]:
    dirs = [Path(d) for d, _, _ in os.walk(top)]
    return sorted(dirs, key=lambda p: len(p.parts), reverse=True)


def cgroup_dirs(parent: str) -> list[Path]:
    """Every existing cgroup folder of the given parent, deepest first."""
    out: list[Path] = []
    for root in cgroup_roots():
        top = root / parent
        if top.is_dir():
            out.extend(_walk_bottom_up(top))
    return out


def thaw(parent: str) -> None:
    for d in cgroup_dirs(parent):
        for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
            with contextlib.suppress(OSError):
                (d / name).write_text(value)


def pids_in_cgroups(parent: str) -> set[int]:
    found: set[int] = set()
    for d in cgroup_dirs(parent):
        for name in ("cgroup.procs", "tasks"):
            with contextlib.suppress(OSError, ValueError):
                found.update(int(x) for x in (d / name).read_text().split())
    return found


def kill_all(pids: set[int]) -> None:
    """SIGKILL every pid and wait (bounded) until they are gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    for pid in pids:
        while _proc.alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def remove_cgroups(parent: str) -> list[Path]:
    """rmdir the parent's cgroup folders (deepest first); return those that could not be removed."""
    left: list[Path] = []
    for d in cgroup_dirs(parent):
        try:
            d.rmdir()
        except OSError:
            left.append(d)
    return left


def mounted_anywhere(path: str) -> bool:
    """True if path is a mount point in any mount namespace on the machine.

    rmdir of a folder that is a mount point only in *another* namespace succeeds and silently
    detaches that mount, so a shared root-fs mountpoint folder must be checked everywhere first.
    """
    seen: set[str] = set()
    for pid in _all_pids():
        link = ns_link(pid, "mnt")
        if link is None or link in seen:
            continue
        seen.add(link)
        try:
            with open(f"/proc/{pid}/mountinfo") as fh:
                if any(line.split()[4] == path for line in fh):
                    return True
        except OSError:
            continue
    return False
