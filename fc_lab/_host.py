"""One lab host: a network namespace plus a held-open private mount namespace.

Mechanism (every step is undone by :func:`teardown`):

1. ``ip netns add {prefix}-{i}`` with a veth to the lab bridge (see ``_net``).
2. A *holder* ``nsenter --net=/run/netns/NS unshare --mount --propagation private sleep infinity``
   owns a private mount namespace inside that netns; its pid is kept in ``hosts/NAME/holder.pid``.
3. Inside the holder's mount namespace (root-fs view unchanged):
   ``/run`` becomes a private tmpfs (so ``/var/run`` → ``/run`` holds this host's docker.sock,
   sshd privsep dir, pid files), ``hosts/NAME/tmp`` is bound on ``/tmp``, and
   ``hosts/NAME/{var-lib,etc,opt}-fc-agent`` on ``/var/lib/fc-agent``, ``/etc/fc-agent``, ``/opt/fc-agent``.
4. sshd and dockerd are started with ``nsenter --target HOLDER --mount --net``; an SSH login therefore
   lands in the host's namespaces, and the paths the agent gives dockerd for bind mounts resolve to
   the same files the agent sees.

Processes are recorded as (pid, start time) in ``procs.json`` so a pid reused after a reboot is never
mistaken for ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from . import _cleanup, _net, _proc
from ._errors import HostStartError, LabError

AGENT_PATHS = {
    "var-lib-fc-agent": "/var/lib/fc-agent",
    "etc-fc-agent": "/etc/fc-agent",
    "opt-fc-agent": "/opt/fc-agent",
}
_IDENTITY = ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub")
_DOCKERD_WAIT = 90.0
_SSHD_WAIT = 20.0


@dataclass(frozen=True, kw_only=True)
class HostSpec:
    """Names and paths of host ``lab-{index}`` in a lab with the given prefix, subnet and state dir."""

    index: int
    prefix: str
    subnet: str
    state_dir: Path

    @property
    def name(self) -> str:
        return f"lab-{self.index}"

    @property
    def dir(self) -> Path:
        return self.state_dir / "hosts" / self.name

    @property
    def netns(self) -> str:
        return f"{self.prefix}-{self.index}"

    @property
    def veth_root(self) -> str:
        return f"{self.prefix}v{self.index}"

    @property
    def veth_peer(self) -> str:
        return f"{self.prefix}p{self.index}"  # renamed to eth0 once inside the netns

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    @property
    def address(self) -> str:
        return f"{self.subnet}.{10 + self.index}"

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    @property
    def cgroup_parent(self) -> str:
        return f"{self.prefix}-{self.name}"

    @property
    def docker_socket(self) -> Path:
        return self.dir / "docker.sock"

    @property
    def host_key(self) -> Path:
        return self.dir / _IDENTITY[0]

    @property
    def authorized_keys(self) -> Path:
        return self.state_dir / "client" / "authorized_keys"


@dataclass(frozen=True, kw_only=True)
class HostStatus:
    """Health of one host as seen from the root namespace."""

    name: str
    address: str
    holder: bool
    sshd: bool
    dockerd: bool

    @property
    def healthy(self) -> bool:
        return self.holder and self.sshd and self.dockerd


# --- recorded processes -------------------------------------------------------------------------

def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def _namespaces(spec: HostSpec) -> tuple[str | None, int | None]:
    """The host's (mount ns link, net ns inode) as recorded at start, if recorded in this boot.

    Used to find orphans (e.g. containerd after dockerd was killed) once the holder is gone.
    """
    try:
        ns = json.loads((spec.dir / "namespaces.json").read_text())
    except (OSError, ValueError):
        return None, None
    if ns.get("boot_id") != _boot_id():
        return None, None
    return ns.get("mnt"), ns.get("net_inode")


def _procs(spec: HostSpec) -> dict[str, list[int]]:
    try:
        procs: dict[str, list[int]] = json.loads((spec.dir / "procs.json").read_text())
        return procs
    except (OSError, ValueError):
        return {}


def _record(spec: HostSpec, role: str, pid: int) -> None:
    procs = _procs(spec)
    started = _cleanup.start_time(pid)
    procs[role] = [pid, started if started is not None else -1]
    tmp = spec.dir / "procs.json.tmp"
    tmp.write_text(json.dumps(procs))
    tmp.replace(spec.dir / "procs.json")


def live_pid(spec: HostSpec, role: str) -> int | None:
    """Pid of the recorded holder/sshd/dockerd if that very process still runs."""
    entry = _procs(spec).get(role)
    if entry and _cleanup.same_process(entry[0], entry[1]):
        return entry[0]
    return None


def holder_pid(spec: HostSpec) -> int:
    pid = live_pid(spec, "holder")
    if pid is None:
        raise LabError(f"host {spec.name} is not running (no live holder); run `fc-lab up`")
    return pid


def nsenter(spec: HostSpec, pid: int | None = None) -> list[str]:
    """argv prefix that runs a command inside the host's mount and network namespaces."""
    return ["nsenter", "--target", str(pid if pid is not None else holder_pid(spec)), "--mount", "--net"]


def _spawn(argv: list[str], log: Path) -> int:
    # A new session so the process outlives the CLI (and a Ctrl-C in its terminal).
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    return proc.pid


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- bring-up -----------------------------------------------------------------------------------

def _start_holder(spec: HostSpec) -> int:
    argv = ["nsenter", f"--net={_net.NETNS_DIR / spec.netns}",
            "unshare", "--mount", "--propagation", "private", "sleep", "infinity"]
    pid = _spawn(argv, spec.dir / "holder.log")
    root_mnt = _cleanup.ns_link(os.getpid(), "mnt")
    # nsenter and unshare exec in place, so the pid is the holder once it runs `sleep` in a new mount ns.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            raise HostStartError(f"{spec.name}: holder exited: {_log_tail(spec.dir / 'holder.log')}") from None
        if comm == "sleep" and _cleanup.ns_link(pid, "mnt") not in (None, root_mnt):
            break
        time.sleep(0.02)
    else:
        raise HostStartError(f"{spec.name}: holder did not enter its namespaces")
    _record(spec, "holder", pid)
    (spec.dir / "holder.pid").write_text(f"{pid}\n")
    (spec.dir / "namespaces.json").write_text(json.dumps(
        {"mnt": _cleanup.ns_link(pid, "mnt"), "net_inode": _net.netns_inode(spec.netns), "boot_id": _boot_id()}))
    return pid


def _setup_mounts(spec: HostSpec, holder: int) -> None:
    ns = nsenter(spec, holder)
    # Copies of the root's /run/netns mounts would pin other labs' namespaces; drop them first.
    _proc.run([*ns, "umount", "--recursive", "--lazy", "/run/netns"], check=False)
    _proc.run([*ns, "mount", "-t", "tmpfs", "-o", "mode=755,nosuid,nodev", "tmpfs", "/run"])
    _proc.run([*ns, "mkdir", "-p", "/run/sshd", "/run/lock"])
    tmp = spec.dir / "tmp"
    tmp.chmod(0o1777)
    _proc.run([*ns, "mount", "--bind", str(tmp), "/tmp"])
    for sub, target in AGENT_PATHS.items():
        _proc.run([*ns, "mount", "--bind", str(spec.dir / sub), target])
    for target in ("/tmp", *AGENT_PATHS.values()):
        _proc.run([*ns, "mount", "--make-private", target])


def _sshd_config(spec: HostSpec) -> str:
    return "\n".join([
        f"ListenAddress {spec.address}:22",
        f"HostKey {spec.host_key}",
        f"PidFile {spec.dir / 'sshd.pid'}",
        f"AuthorizedKeysFile {spec.authorized_keys}",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "StrictModes no",
        # The provider reaches the agent's loopback-only control port through direct-tcpip.
        "AllowTcpForwarding local",
        "AllowAgentForwarding no",
        "X11Forwarding no",
        "PermitTunnel no",
        "GatewayPorts no",
        "PrintMotd no",
        # Deployments open many sessions at once.
        "MaxSessions 64",
        "MaxStartups 64:30:128",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
        "",
    ])


def _start_sshd(spec: HostSpec, holder: int) -> None:
    if not spec.host_key.exists():
        _proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(spec.host_key)])
    config = spec.dir / "sshd_config"
    config.write_text(_sshd_config(spec))
    _proc.run([*nsenter(spec, holder), "/usr/sbin/sshd", "-t", "-f", str(config)])
    pid = _spawn([*nsenter(spec, holder), "/usr/sbin/sshd", "-D", "-f", str(config), "-E", str(spec.dir / "sshd.log")],
                 spec.dir / "sshd.out")
    _record(spec, "sshd", pid)
    deadline = time.monotonic() + _SSHD_WAIT
    while time.monotonic() < deadline:
        if ssh_banner_ok(spec.address):
            return
        if not _proc.alive(pid):
            break
        time.sleep(0.1)
    raise HostStartError(f"{spec.name}: sshd not answering on {spec.address}:22\n{_log_tail(spec.dir / 'sshd.log')}")


def _start_dockerd(spec: HostSpec, holder: int) -> None:
    argv = [*nsenter(spec, holder), "dockerd",
            "--data-root", str(spec.dir / "docker"),
            "--exec-root", "/run/docker",
            "--pidfile", "/run/docker.pid",
            "-H", "unix:///run/docker.sock",
            "-H", f"unix://{spec.docker_socket}",
            "--cgroup-parent", spec.cgroup_parent]
    log = spec.dir / "dockerd.log"
    pid = _spawn(argv, log)
    _record(spec, "dockerd", pid)
    deadline = time.monotonic() + _DOCKERD_WAIT
    while time.monotonic() < deadline:
        if dockerd_ok(spec, timeout=2):
            return
        if not _proc.alive(pid):
            break
        time.sleep(0.2)
    raise HostStartError(f"{spec.name}: dockerd did not become ready\n{_log_tail(log)}")


def start(spec: HostSpec) -> None:
    """Build the host from nothing (the caller tears down any remains first)."""
    spec.dir.mkdir(parents=True, exist_ok=True)
    for sub in ("tmp", "docker", *AGENT_PATHS):
        (spec.dir / sub).mkdir(exist_ok=True)
    _net.create_host_net(spec.netns, spec.veth_root, spec.veth_peer, spec.bridge, spec.address, spec.gateway)
    holder = _start_holder(spec)
    _setup_mounts(spec, holder)
    _start_sshd(spec, holder)
    _start_dockerd(spec, holder)


# --- health -------------------------------------------------------------------------------------

def ssh_banner_ok(address: str, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def docker_client(spec: HostSpec, timeout: int = 60) -> docker.DockerClient:
    """A client for the host's engine (API version negotiated, so it fails here if the engine is down)."""
    try:
        return docker.DockerClient(base_url=f"unix://{spec.docker_socket}", version="auto", timeout=timeout)
    except docker.errors.DockerException as exc:
        raise LabError(f"{spec.name}: docker engine not reachable at {spec.docker_socket}: {exc}") from exc


def dockerd_ok(spec: HostSpec, timeout: int = 3) -> bool:
    if not spec.docker_socket.is_socket():
        return False
    try:
        with docker.APIClient(base_url=f"unix://{spec.docker_socket}", version="1.41", timeout=timeout) as api:
            return bool(api.ping())
    except (docker.errors.DockerException, OSError):
        return False
    except Exception:  # requests' connection errors: the engine is simply not up
        return False


def status(spec: HostSpec) -> HostStatus:
    holder = live_pid(spec, "holder") is not None and _net.netns_exists(spec.netns)
    sshd = holder and live_pid(spec, "sshd") is not None and ssh_banner_ok(spec.address)
    dockerd = holder and live_pid(spec, "dockerd") is not None and dockerd_ok(spec)
    return HostStatus(name=spec.name, address=spec.address, holder=holder, sshd=sshd, dockerd=dockerd)


# --- tear-down ----------------------------------------------------------------------------------

def _remove_containers(spec: HostSpec) -> None:
    # Removing containers through the engine first makes dockerd's own shutdown quick and tidy.
    if not dockerd_ok(spec, timeout=2):
        return
    try:
        with docker.APIClient(base_url=f"unix://{spec.docker_socket}", version="1.41", timeout=30) as api:
            for c in api.containers(all=True):
                with contextlib.suppress(docker.errors.DockerException):
                    api.remove_container(c["Id"], force=True)
    except Exception:  # best effort; the sweep below kills whatever is left
        pass


def teardown(spec: HostSpec, *, keep_identity: bool = False) -> None:
    """Remove every trace of the host. Idempotent; safe on a half-built host.

    keep_identity: keep the SSH host key so a rebuilt host presents the same key.
    """
    holder = live_pid(spec, "holder")
    recorded_mnt, recorded_net = _namespaces(spec)
    mnt = (_cleanup.ns_link(holder, "mnt") if holder else None) or recorded_mnt
    net_inode = _net.netns_inode(spec.netns) or recorded_net
    _remove_containers(spec)
    for role in ("dockerd", "sshd"):
        pid = live_pid(spec, role)
        if pid is not None:
            _proc.stop(pid, timeout=30 if role == "dockerd" else 5)
    _cleanup.thaw(spec.cgroup_parent)
    strays = _cleanup.pids_in_namespaces(mnt=mnt, net_inode=net_inode, exclude={holder} if holder else set())
    strays |= _cleanup.pids_in_cgroups(spec.cgroup_parent)
    _cleanup.kill_all(strays - ({holder} if holder else set()))
    if holder is not None:
        _proc.stop(holder, timeout=5)
    _cleanup.remove_cgroups(spec.cgroup_parent)
    _net.delete_host_net(spec.netns, spec.veth_root)
    _remove_dir(spec, keep_identity=keep_identity)


def _remove_dir(spec: HostSpec, *, keep_identity: bool) -> None:
    if not spec.dir.exists():
        return
    if not keep_identity:
        shutil.rmtree(spec.dir, ignore_errors=True)
        return
    for child in spec.dir.iterdir():
        if child.name in _IDENTITY:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
