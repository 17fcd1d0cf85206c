"""``python3 -m runtime_agent.supervisor --pidfile P -- python3 -m runtime_agent ...``: keeps the agent running on
hosts without systemd (where systemd exists, the Fleet installs a unit with Restart=always instead).

It starts the agent as its child and starts it again whenever it exits without being asked to (``kill -9``, a
crash), after a delay that grows while the agent keeps dying within seconds of its start (0.5 s, doubling up to
10 s; back to 0.5 s once a run lasted 5 s). SIGTERM stops the agent (TERM, then KILL after 20 s) and the supervisor.
Instance containers belong to dockerd, not to the agent, so they keep running across a restart and the new agent
re-adopts them (``Agent.reconcile``).

How the supervisor itself stays alive: it is deliberately tiny (the standard library, no threads, no sockets,
nothing of the agent imported, so no agent bug can kill it); it runs in its own session, ignores SIGHUP and
SIGINT, and asks the kernel's OOM killer to pick other processes first. If it dies all the same, the Fleet's
refresh reports the host as unsupervised (drift) and the next ``pulumi up`` starts it again.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

FIRST_DELAY, MAX_DELAY, STABLE_AFTER, STOP_GRACE = 0.5, 10.0, 5.0, 20.0


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} supervisor: {message}", file=sys.stderr, flush=True)


def supervise(command: list[str], pidfile: Path) -> int:
    stopping = False
    stop_at = 0.0
    child: subprocess.Popen[bytes] | None = None

    def stop(*_: object) -> None:
        nonlocal stopping, stop_at
        stopping, stop_at = True, time.monotonic()
        if child is not None and child.poll() is None:
            child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        Path("/proc/self/oom_score_adj").write_text("-900")
    except OSError:
        pass  # not root: the OOM killer treats it like any process
    pidfile.write_text(f"{os.getpid()}\n")
    delay = FIRST_DELAY
    restarts = 0
    try:
        while not stopping:
            started = time.monotonic()
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
            while True:
                try:
                    code = child.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    if stopping and time.monotonic() - stop_at > STOP_GRACE:
                        child.kill()
            if stopping:
                break
            lived = time.monotonic() - started
            delay = FIRST_DELAY if lived >= STABLE_AFTER else min(MAX_DELAY, delay * 2 if restarts else delay)
            restarts += 1
            _log(f"agent (pid {child.pid}) exited with {code} after {lived:.1f} s; restart {restarts} in "
                 f"{delay:g} s")
            deadline = time.monotonic() + delay
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        pidfile.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fc-agent-supervisor")
    parser.add_argument("--pidfile", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the agent's command line")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the agent's command after --")
    return supervise(command, args.pidfile)


if __name__ == "__main__":
    sys.exit(main())
