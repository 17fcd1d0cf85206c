"""Small process helpers: run a command with a readable error, stop a pid and reap it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from ._errors import LabError


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run argv, capture text output; raise LabError (with stderr) when check fails."""
    try:
        res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{argv[0]} failed: {exc}") from exc
    if check and res.returncode != 0:
        raise LabError(f"command {list(argv)} exited {res.returncode}: {res.stderr.strip() or res.stdout.strip()}")
    return res


def alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may itself contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _reap(pid: int) -> None:
    # Processes we started in this interpreter stay as zombies until waited for; others are reaped by init.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(pid: int, *, timeout: float = 15.0) -> None:
    """SIGTERM pid, wait up to timeout, then SIGKILL. Idempotent: a missing pid is fine."""
    if pid <= 1:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not alive(pid):
            _reap(pid)
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(100):
        _reap(pid)
        if not alive(pid):
            return
        time.sleep(0.05)
