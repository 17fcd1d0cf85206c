"""Remote commands as data: each builder returns an argv list; ``_ssh.SSHSession.run`` executes it.
Nothing here opens a connection, so tests can assert the exact commands."""

from __future__ import annotations

import shlex

AGENT_ROOT = "/opt/fc-agent"
AGENT_CONFIG_DIR = "/etc/fc-agent"
AGENT_CONFIG = f"{AGENT_CONFIG_DIR}/config.json"
# One file per Fleet resource (any stack) that uses this host's agent; the last one out uninstalls it.
FLEET_REGISTRY = f"{AGENT_CONFIG_DIR}/fleets"
AGENT_STATE = "/var/lib/fc-agent"
AGENT_PIDFILE = f"{AGENT_STATE}/agent.pid"
AGENT_LOG = f"{AGENT_STATE}/agent.log"


def release_dir(version: str) -> str:
    return f"{AGENT_ROOT}/releases/{version}"


def read_agent_config() -> list[str]:
    return ["cat", AGENT_CONFIG]


def prepare_dirs() -> list[str]:
    return ["mkdir", "-p", f"{AGENT_ROOT}/releases", AGENT_CONFIG_DIR, f"{AGENT_STATE}/code"]


def python_version() -> list[str]:
    return ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]


def path_exists(path: str) -> list[str]:
    return ["test", "-e", path]


def unpack_release(archive: str, version: str) -> list[str]:
    target = release_dir(version)
    script = (f"rm -rf {shlex.quote(target)}.tmp && mkdir -p {shlex.quote(target)}.tmp && "
              f"tar -xzf {shlex.quote(archive)} -C {shlex.quote(target)}.tmp && "
              f"rm -rf {shlex.quote(target)} && mv {shlex.quote(target)}.tmp {shlex.quote(target)} && "
              f"rm -f {shlex.quote(archive)}")
    return ["sh", "-c", script]


def activate_release(version: str) -> list[str]:
    return ["ln", "-sfn", release_dir(version), f"{AGENT_ROOT}/current"]


def stop_agent(timeout_s: int = 20) -> list[str]:
    """TERM the agent from its pidfile, wait, then KILL; succeeds when no agent runs."""
    script = (
        f"p=$(cat {AGENT_PIDFILE} 2>/dev/null) || exit 0; "
        "[ -n \"$p\" ] && kill -0 \"$p\" 2>/dev/null || { rm -f " + AGENT_PIDFILE + "; exit 0; }; "
        "kill -TERM \"$p\"; "
        f"i=0; while kill -0 \"$p\" 2>/dev/null && [ $i -lt {timeout_s * 10} ]; do sleep 0.1; i=$((i+1)); done; "
        "kill -KILL \"$p\" 2>/dev/null; rm -f " + AGENT_PIDFILE
    )
    return ["sh", "-c", script]


def start_agent() -> list[str]:
    """Starts the agent detached from the SSH session (own session, stdin closed, output to its log). The agent
    writes its pidfile itself: lab hosts share one PID namespace, so a search by command line would be wrong."""
    script = (
        f"rm -f {AGENT_PIDFILE}; cd {AGENT_ROOT}/current && PYTHONPATH={AGENT_ROOT}/current "
        f"setsid -f python3 -m runtime_agent --config {AGENT_CONFIG} --pidfile {AGENT_PIDFILE} "
        f"</dev/null >>{AGENT_LOG} 2>&1 && "
        f"for i in $(seq 100); do [ -s {AGENT_PIDFILE} ] && exit 0; sleep 0.1; done; "
        f"echo 'agent did not start' >&2; tail -20 {AGENT_LOG} >&2; exit 1"
    )
    return ["sh", "-c", script]


def agent_log_tail(lines: int = 30) -> list[str]:
    return ["tail", f"-{lines}", AGENT_LOG]


def purge_instances() -> list[str]:
    """Removes every container the agent owns (run after the agent stopped; a no-op when it was never installed)."""
    script = (f"[ -d {AGENT_ROOT}/current ] && [ -f {AGENT_CONFIG} ] || exit 0; "
              f"cd {AGENT_ROOT}/current && PYTHONPATH={AGENT_ROOT}/current "
              f"python3 -m runtime_agent --config {AGENT_CONFIG} --purge")
    return ["sh", "-c", script]


def current_release() -> list[str]:
    return ["readlink", f"{AGENT_ROOT}/current"]


def register_fleet(fleet_id: str, stack: str) -> list[str]:
    entry = shlex.quote(f"{FLEET_REGISTRY}/{fleet_id}")
    return ["sh", "-c", f"mkdir -p {FLEET_REGISTRY} && printf '%s\\n' {shlex.quote(stack)} > {entry}"]


def deregister_fleet(fleet_id: str) -> list[str]:
    """Removes the fleet's registration and prints the registrations that remain, one per line."""
    entry = shlex.quote(f"{FLEET_REGISTRY}/{fleet_id}")
    return ["sh", "-c", f"rm -f {entry}; ls -A {FLEET_REGISTRY} 2>/dev/null; exit 0"]


def uninstall_agent() -> list[str]:
    """Everything the agent put on the host, its local log stores included: an uninstalled host is a clean host."""
    state = [f"{AGENT_STATE}/{name}" for name in ("agent.db", "agent.db-wal", "agent.db-shm", "code", "layers",
                                                   "logs")]
    return ["rm", "-rf", f"{AGENT_ROOT}/releases", f"{AGENT_ROOT}/current", AGENT_CONFIG, FLEET_REGISTRY, *state,
            AGENT_PIDFILE, AGENT_LOG]


def code_archive(checksum: str) -> str:
    return f"{AGENT_STATE}/code/{checksum}.tar.gz"


DEPLOY_LOCK = f"{AGENT_STATE}/deploy.lock"
LOCK_HELD_STATUS = 3


def take_lock() -> list[str]:
    """Atomic (mkdir); stdin becomes the holder record. When held, prints the holder's record and exits 3."""
    lock = shlex.quote(DEPLOY_LOCK)
    script = (f"mkdir -p {shlex.quote(AGENT_STATE)} && if mkdir {lock} 2>/dev/null; then cat > {lock}/holder.json; "
              f"else cat {lock}/holder.json 2>/dev/null; exit {LOCK_HELD_STATUS}; fi")
    return ["sh", "-c", script]


def release_lock(process_id: str) -> list[str]:
    """Removes the lock only if this process holds it (a broken and re-taken lock belongs to someone else)."""
    lock = shlex.quote(DEPLOY_LOCK)
    marker = shlex.quote(f'"process": "{process_id}"')
    return ["sh", "-c", f"grep -qF {marker} {lock}/holder.json 2>/dev/null && rm -rf {lock}; exit 0"]


def read_lock() -> list[str]:
    return ["sh", "-c", f"cat {shlex.quote(DEPLOY_LOCK)}/holder.json 2>/dev/null || true"]


def break_lock() -> list[str]:
    return ["rm", "-rf", DEPLOY_LOCK]
