"""Remote commands as data: each builder returns an argv list; ``_ssh.SSHSession.run`` executes it.
Nothing here opens a connection, so tests can assert the exact commands."""

from __future__ import annotations

import shlex

AGENT_ROOT = "/opt/fc-agent"
AGENT_CONFIG_DIR = "/etc/fc-agent"
AGENT_CONFIG = f"{AGENT_CONFIG_DIR}/config.json"
# One file per Fleet resource (any stack) that uses this host's agent; the last one out uninstalls it.
FLEET_REGISTRY = f"{AGENT_CONFIG_DIR}/fleets"
ACCESS_KEYS = f"{AGENT_CONFIG_DIR}/access-keys"  # one 0600 file per fc.AccessKey (the agent writes them)
AGENT_STATE = "/var/lib/fc-agent"
AGENT_PIDFILE = f"{AGENT_STATE}/agent.pid"
SUPERVISOR_PIDFILE = f"{AGENT_STATE}/supervisor.pid"
AGENT_LOG = f"{AGENT_STATE}/agent.log"
SYSTEMD_UNIT = "/etc/systemd/system/fc-agent.service"
# The fleet-wide task queue's member on a queue host (FleetArgs.task_queue nats): its config (0600: it holds the
# cluster's password), its store, its log, and the supervisor that keeps it running (runtime_agent.supervisor).
NATS_CONFIG = f"{AGENT_CONFIG_DIR}/nats-server.conf"
NATS_STORE = f"{AGENT_STATE}/jetstream"
NATS_SUPERVISOR_PIDFILE = f"{AGENT_STATE}/nats-supervisor.pid"
NATS_LOG = f"{AGENT_STATE}/nats-server.log"
# The agent is supervised by systemd when the host runs it (the unit above), else by runtime_agent.supervisor.
_SYSTEMD = f"[ -d /run/systemd/system ] && [ -f {SYSTEMD_UNIT} ]"
# A process is alive when it exists and is no zombie (a killed process whose parent has not reaped it yet still
# answers kill -0; on hosts whose PID 1 reaps nothing it stays so).
_ALIVE = "alive() { [ -n \"$1\" ] && kill -0 \"$1\" 2>/dev/null && ! grep -q '^State:.*Z' /proc/$1/status; }; "


def release_dir(version: str) -> str:
    return f"{AGENT_ROOT}/releases/{version}"


def read_agent_config() -> list[str]:
    return ["cat", AGENT_CONFIG]


def prepare_dirs() -> list[str]:
    return ["mkdir", "-p", f"{AGENT_ROOT}/releases", AGENT_CONFIG_DIR, f"{AGENT_STATE}/code"]


def python_version() -> list[str]:
    """Prints the host python3's minor version and its path, e.g. "3.11 /usr/bin/python3"."""
    return ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2], sys.executable)"]


def has_systemd() -> list[str]:
    return ["test", "-d", "/run/systemd/system"]


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
    """Stops the agent and what supervises it: the systemd unit, else the supervisor (TERM from its pidfile; it
    stops the agent), then any agent left (one started before supervision, or whose supervisor died): TERM, wait,
    KILL. Succeeds when nothing runs."""
    wait_then_kill = (
        "kill -TERM \"$p\"; "
        f"i=0; while alive \"$p\" && [ $i -lt {timeout_s * 10} ]; do sleep 0.1; i=$((i+1)); done; "
        "kill -KILL \"$p\" 2>/dev/null; "
    )
    script = (
        f"{_ALIVE}if {_SYSTEMD}; then systemctl stop fc-agent.service; fi; "
        f"p=$(cat {SUPERVISOR_PIDFILE} 2>/dev/null); "
        f"if alive \"$p\"; then {wait_then_kill}fi; rm -f {SUPERVISOR_PIDFILE}; "
        f"p=$(cat {AGENT_PIDFILE} 2>/dev/null); "
        f"if alive \"$p\"; then {wait_then_kill}fi; rm -f {AGENT_PIDFILE}"
    )
    return ["sh", "-c", script]


def agent_command(python: str = "python3") -> str:
    return f"{python} -m runtime_agent --config {AGENT_CONFIG} --pidfile {AGENT_PIDFILE}"


def _supervised(pidfile: str, command: str, log: str) -> str:
    """The shell words that start ``command`` under runtime_agent.supervisor (from the agent's current release), in
    a session of its own, detached from the SSH session (stdin closed, output appended to ``log``)."""
    return (f"cd {AGENT_ROOT}/current && PYTHONPATH={AGENT_ROOT}/current setsid -f python3 -m runtime_agent.supervisor "
            f"--pidfile {pidfile} -- {command} </dev/null >>{log} 2>&1")


def start_agent() -> list[str]:
    """Starts the agent under its supervision, detached from the SSH session: `systemctl restart` where the unit
    is installed, else runtime_agent.supervisor in its own session (stdin closed, output to the agent's log). A
    supervisor that already runs is kept: it restarts the agent itself. Waits for the agent's pidfile (the agent
    writes it; lab hosts share one PID namespace, so a search by command line would be wrong)."""
    script = (
        f"{_ALIVE}if {_SYSTEMD}; then rm -f {AGENT_PIDFILE}; systemctl daemon-reload && "
        "systemctl enable fc-agent.service >/dev/null 2>&1 && systemctl restart fc-agent.service || exit 1; "
        f"else p=$(cat {SUPERVISOR_PIDFILE} 2>/dev/null); "
        f"if ! alive \"$p\"; then rm -f {AGENT_PIDFILE}; "
        f"{_supervised(SUPERVISOR_PIDFILE, agent_command(), AGENT_LOG)} || exit 1; fi; fi; "
        f"for i in $(seq 100); do [ -s {AGENT_PIDFILE} ] && exit 0; sleep 0.1; done; "
        f"echo 'agent did not start' >&2; tail -20 {AGENT_LOG} >&2; exit 1"
    )
    return ["sh", "-c", script]


def supervision() -> list[str]:
    """Prints how the agent is kept running: systemd, supervisor, or none (a refresh reports the last as drift)."""
    script = (f"{_ALIVE}if {_SYSTEMD} && systemctl is-active --quiet fc-agent.service; then echo systemd; exit 0; "
              f"fi; p=$(cat {SUPERVISOR_PIDFILE} 2>/dev/null); "
              "if alive \"$p\"; then echo supervisor; else echo none; fi")
    return ["sh", "-c", script]


def remove_unit() -> list[str]:
    """Removes the systemd unit (after stop_agent); a no-op on hosts without one."""
    return ["sh", "-c", f"[ -f {SYSTEMD_UNIT} ] || exit 0; systemctl disable fc-agent.service >/dev/null 2>&1; "
            f"rm -f {SYSTEMD_UNIT}; [ -d /run/systemd/system ] && systemctl daemon-reload; exit 0"]


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
    """Everything the agent put on the host, its local log stores, layer trees and async task queue included: an
    uninstalled host is a clean host."""
    databases = [f"{db}{suffix}" for db in ("agent.db", "tasks.db") for suffix in ("", "-wal", "-shm")]
    state = [f"{AGENT_STATE}/{name}" for name in (*databases, "code", "layers", "logs", "images")]
    return ["rm", "-rf", f"{AGENT_ROOT}/releases", f"{AGENT_ROOT}/current", AGENT_CONFIG, FLEET_REGISTRY,
            ACCESS_KEYS, *state, AGENT_PIDFILE, SUPERVISOR_PIDFILE, AGENT_LOG, f"{AGENT_ROOT}/nats", NATS_CONFIG,
            NATS_STORE, NATS_SUPERVISOR_PIDFILE, NATS_LOG]


def nats_binary(digest: str) -> str:
    """Where the shipped nats-server build lives, by the first 16 hex digits of its sha256."""
    return f"{AGENT_ROOT}/nats/{digest}/nats-server"


def start_nats(binary: str) -> list[str]:
    """Starts nats-server under runtime_agent.supervisor (in its own session, restarted whenever it exits), unless
    its supervisor already runs; waits for the supervisor's pidfile."""
    script = (
        f"{_ALIVE}p=$(cat {NATS_SUPERVISOR_PIDFILE} 2>/dev/null); if alive \"$p\"; then exit 0; fi; "
        f"mkdir -p -m 700 {NATS_STORE} && "
        f"{_supervised(NATS_SUPERVISOR_PIDFILE, f'{shlex.quote(binary)} -c {NATS_CONFIG}', NATS_LOG)} || exit 1; "
        f"for i in $(seq 100); do [ -s {NATS_SUPERVISOR_PIDFILE} ] && exit 0; sleep 0.1; done; "
        f"echo 'nats-server supervisor did not start' >&2; tail -20 {NATS_LOG} >&2; exit 1"
    )
    return ["sh", "-c", script]


def nats_supervised() -> list[str]:
    """Exits 0 when the queue member's supervisor runs (it restarts nats-server itself), else 1."""
    return ["sh", "-c", f"{_ALIVE}alive \"$(cat {NATS_SUPERVISOR_PIDFILE} 2>/dev/null)\""]


def stop_nats(timeout_s: int = 20) -> list[str]:
    """Stops nats-server's supervisor (TERM: it stops nats-server, which shuts down cleanly), KILL after the
    timeout. Succeeds when nothing runs."""
    script = (
        f"{_ALIVE}p=$(cat {NATS_SUPERVISOR_PIDFILE} 2>/dev/null); "
        f"if alive \"$p\"; then kill -TERM \"$p\"; i=0; while alive \"$p\" && [ $i -lt {timeout_s * 10} ]; do "
        f"sleep 0.1; i=$((i+1)); done; kill -KILL \"$p\" 2>/dev/null; fi; rm -f {NATS_SUPERVISOR_PIDFILE}; exit 0"
    )
    return ["sh", "-c", script]


def image_tarball(sha256: str) -> str:
    """Where a shipped image tarball waits for the agent to load it (content-addressed; the agent removes it)."""
    return f"{AGENT_STATE}/images/{sha256}.tar"


def prepare_image_dir() -> list[str]:
    return ["mkdir", "-p", f"{AGENT_STATE}/images"]


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
