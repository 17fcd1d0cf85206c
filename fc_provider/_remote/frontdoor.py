"""The front door on an edge host: HAProxy installed from the distribution's package, run in master-worker mode
under the fleet's folders, its configuration rendered by ``_model.frontdoor`` from every domain fragment on the
host, checked with ``haproxy -c`` before it replaces the running one, and reloaded gracefully (SIGUSR2 to the
master: the new worker takes over the listening sockets, old workers finish their requests).

Commands are data (argv lists, as in ``commands``); ``apply`` and ``observe`` run them over one SSH session. Callers
hold the host's deploy lock, so two domains never rewrite one host's configuration at once."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .._errors import RemoteCommandFailed
from .._model import frontdoor as fd
from .ssh import SSHSession

PIDFILE = f"{fd.STATE_DIR}/haproxy.pid"
STARTUP_LOG = f"{fd.STATE_DIR}/haproxy.out"
CANDIDATE = f"{fd.CONFIG}.candidate"
SERVER_STATE = f"{fd.STATE_DIR}/server-state"  # the file haproxy.cfg's server-state-file names: none at a start
_Q = shlex.quote


class FrontDoorConfigInvalid(RemoteCommandFailed):
    """The rendered configuration failed ``haproxy -c``; the running one was kept."""


def install() -> list[str]:
    """HAProxy from the host's package manager when it is missing (a no-op in the lab: setup installs it once and
    every lab host shares the machine's binaries); prints the version."""
    script = ("command -v haproxy >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
              "apt-get install -y -qq --no-install-recommends haproxy >/dev/null; } && haproxy -v | head -1")
    return ["sh", "-c", script]


def prepare() -> list[str]:
    return ["sh", "-c", f"mkdir -p {fd.DOMAINS_DIR} {fd.CERTS_DIR} {fd.STATE_DIR} && chmod 700 {fd.CERTS_DIR} "
                        f"{fd.DOMAINS_DIR}"]


# One round trip for everything refresh and apply need to know. Runs on the host's python3 (the agent needs it).
_STATE_SCRIPT = f"""
import json, os
def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None
fragments = []
if os.path.isdir({fd.DOMAINS_DIR!r}):
    for name in sorted(os.listdir({fd.DOMAINS_DIR!r})):
        if name.endswith(".json"):
            try:
                fragments.append(json.loads(read(os.path.join({fd.DOMAINS_DIR!r}, name)) or ""))
            except ValueError:
                pass
master, workers = (read({PIDFILE!r}) or "").strip(), []
try:
    alive = master.isdigit() and b"haproxy" in open("/proc/%s/cmdline" % master, "rb").read()
except OSError:
    alive = False
if alive:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        stat = read("/proc/%s/stat" % pid) or ""
        if stat and stat.rsplit(")", 1)[-1].split()[1] == master:
            workers.append(int(pid))
print(json.dumps({{"config": read({fd.CONFIG!r}), "fragments": fragments, "running": alive,
                  "master": int(master) if alive else None, "workers": sorted(workers)}}))
"""


def read_state() -> list[str]:
    return ["python3", "-c", _STATE_SCRIPT]


def validate(path: str) -> list[str]:
    return ["haproxy", "-c", "-q", "-f", path]


def start() -> list[str]:
    """Master-worker, daemonized; a configuration or bind error is reported on stderr with a non-zero exit."""
    script = (f"rm -f {SERVER_STATE}; haproxy -W -D -p {PIDFILE} -f {fd.CONFIG} </dev/null >{STARTUP_LOG} 2>&1 || "
              f"{{ cat {STARTUP_LOG} >&2; exit 1; }}")
    return ["sh", "-c", script]


# The running worker's view of every server (show servers state on its admin socket), written where the next worker
# loads it (load-server-state-from-file). Without a worker to ask, the old file is removed rather than trusted.
_SAVE_SERVER_STATE = f"""
import os, socket
try:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect({fd.STATE_DIR + "/admin.sock"!r})
    s.sendall(b"show servers state\\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    if not data.startswith(b"1\\n"):  # the format version; anything else is an error message
        raise OSError(data[:200])
    with open({SERVER_STATE + ".new"!r}, "wb") as f:
        f.write(data)
    os.replace({SERVER_STATE + ".new"!r}, {SERVER_STATE!r})
except OSError:
    try:
        os.remove({SERVER_STATE!r})
    except OSError:
        pass
"""


def reload(wait_s: int = 20) -> list[str]:
    """Saves the servers' state, sends SIGUSR2 to the master, then waits for a worker that was not there before
    (the new configuration loaded, with the saved state)."""
    script = (f"python3 -c {_Q(_SAVE_SERVER_STATE)}; "
              f"m=$(cat {PIDFILE}) && old=\" $(ps -o pid= --ppid $m | tr '\\n' ' ') \" && kill -USR2 $m && "
              f"for i in $(seq {wait_s * 10}); do for p in $(ps -o pid= --ppid $m); do "
              "case \"$old\" in *\" $p \"*) ;; *) exit 0;; esac; done; sleep 0.1; done; "
              "echo 'haproxy did not start a worker with the new configuration' >&2; exit 1")
    return ["sh", "-c", script]


def stop(wait_s: int = 20) -> list[str]:
    script = (f"m=$(cat {PIDFILE} 2>/dev/null) || exit 0; grep -q haproxy /proc/$m/cmdline 2>/dev/null || "
              f"{{ rm -f {PIDFILE}; exit 0; }}; kill -TERM $m; i=0; "
              f"while kill -0 $m 2>/dev/null && [ $i -lt {wait_s * 10} ]; do sleep 0.1; i=$((i+1)); done; "
              f"kill -KILL $m 2>/dev/null; rm -f {PIDFILE}")
    return ["sh", "-c", script]


def commit(domain: str, has_fragment: bool) -> list[str]:
    """Puts the validated candidate in place, with the domain's fragment (uploaded as .new) or without it."""
    fragment = _Q(f"{fd.DOMAINS_DIR}/{domain}.json")
    step = f"mv {fragment}.new {fragment}" if has_fragment else f"rm -f {fragment}"
    return ["sh", "-c", f"{step} && mv {CANDIDATE} {fd.CONFIG}"]


def prune(keep: list[str]) -> list[str]:
    """Removes certificates and crt-lists the configuration no longer refers to."""
    kept = " ".join(_Q(k) for k in keep)
    script = (f"for f in {fd.CERTS_DIR}/*.pem {fd.CONFIG_DIR}/crt-list-*.txt; do [ -e \"$f\" ] || continue; "
              f"case \" {kept} \" in *\" $f \"*) ;; *) rm -f \"$f\";; esac; done")
    return ["sh", "-c", script]


def remove_all() -> list[str]:
    return ["rm", "-rf", fd.CONFIG_DIR, fd.STATE_DIR]


@dataclass(frozen=True)
class HostState:
    config: Optional[str]
    fragments: list[dict[str, Any]]
    running: bool
    master: Optional[int]
    workers: list[int]

    def fragment_of(self, domain: str) -> Optional[dict[str, Any]]:
        return next((f for f in self.fragments if f.get("domain") == domain), None)


def state(ssh: SSHSession) -> HostState:
    data = json.loads(ssh.run(read_state()).stdout)
    return HostState(data["config"], data["fragments"], data["running"], data["master"], data["workers"])


def apply(ssh: SSHSession, domain: str, fragment: Optional[Mapping[str, Any]],
          cert_bundle: Optional[bytes] = None) -> str:
    """Makes the host serve ``fragment`` for ``domain`` (None: stop serving it) next to the other domains there.
    Returns what it did: "unchanged", "started", "reloaded" or "stopped". A candidate that fails validation
    raises FrontDoorConfigInvalid and changes nothing that runs."""
    ssh.run(install(), timeout=600)
    ssh.run(prepare())
    current = state(ssh)
    fragments = [f for f in current.fragments if f.get("domain") != domain and f.get("version") == fd.FRAGMENT_VERSION]
    if fragment is not None:
        fragments.append(dict(fragment))
    if not fragments:
        ssh.run(stop())
        ssh.run(remove_all())
        return "stopped"
    config = fd.render(fragments)
    if (current.running and current.config == config
            and current.fragment_of(domain) == (dict(fragment) if fragment is not None else None)):
        return "unchanged"
    if fragment is not None and fragment.get("tls") and cert_bundle is not None:
        ssh.put_bytes(cert_bundle, fragment["tls"]["cert_file"], mode=0o600)
    lists = fd.crt_lists(fragments)
    for path, text in lists.items():
        ssh.put_bytes(text.encode(), path, mode=0o600)
    ssh.put_bytes(config.encode(), CANDIDATE, mode=0o600)
    checked = ssh.run(validate(CANDIDATE), check=False)
    if checked.exit_status != 0:
        ssh.run(["rm", "-f", CANDIDATE], check=False)
        raise FrontDoorConfigInvalid(ssh.host.name, validate(CANDIDATE), checked.exit_status,
                                     f"the front door configuration for {domain} failed validation, the running "
                                     f"one was kept: {(checked.stderr or checked.stdout).strip()[-800:]}")
    if fragment is not None:
        ssh.put_bytes(json.dumps(fragment, sort_keys=True).encode(), f"{fd.DOMAINS_DIR}/{domain}.json.new",
                      mode=0o600)
    ssh.run(commit(domain, fragment is not None))
    if current.running:
        ssh.run(reload())
        done = "reloaded"
    else:
        ssh.run(start())
        done = "started"
    keep = list(lists) + [f["tls"]["cert_file"] for f in fragments if f.get("tls")]
    ssh.run(prune(keep))
    return done


def observe(ssh: SSHSession, domain: str, expected: Mapping[str, Any]) -> str:
    """How the host's front door compares with what was deployed for ``domain``: "in sync", or the drift."""
    current = state(ssh)
    mine = current.fragment_of(domain)
    if mine is None:
        return "drift: the domain is not configured on this host"
    if mine != dict(expected):
        return "drift: the domain's configuration on this host differs"
    if not current.running:
        return "drift: the front door is not running"
    valid = [f for f in current.fragments if f.get("version") == fd.FRAGMENT_VERSION]
    if current.config != fd.render(valid):
        return "drift: haproxy.cfg was changed on this host"
    return "in sync"
