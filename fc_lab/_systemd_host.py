"""``lab-systemd``: one extra lab host whose init is systemd, so the Fleet's systemd unit really runs somewhere.

The regular lab hosts share this machine's root filesystem and have no init of their own; systemd must never run
there (started as PID 1 over the machine's root, its tmpfiles service wipes the machine's /tmp). This host is a
container of a dedicated dockerd instead, on **its own root filesystem** (a Debian bookworm rootfs made
by debootstrap with systemd, openssh-server, python3 and docker.io, cached like the runtime images):

1. A lab network namespace ``{prefix}-sd`` (veth to the lab bridge, address ``{subnet}.250``) and a holder with a
   private mount namespace, exactly like a regular host (``_host``); an *outer* dockerd runs inside them.
2. The outer dockerd runs the container ``--network host`` (so its network is that namespace: sshd inside listens
   on the lab address), ``--cgroupns private`` (systemd sees its own cgroup tree: the machine is cgroup v1 and its
   init mounts the ``name=systemd`` hierarchy that systemd 252 needs in legacy mode; runc mounts it into the
   container), every capability the machine has (the inner dockerd creates namespaces, cgroups and iptables
   rules; see ``_SECURITY`` for why not ``--privileged``). Nothing of the
   machine's /, /tmp, /var, /etc or /run is mounted into it: only two folders of this host's lab folder,
   ``inner-docker`` (the inner engine's data root, which cannot be overlay on overlay) and ``share`` (where the
   inner engine also listens, so the lab reaches it from the root namespace as it reaches other hosts' engines).
3. Units that would reach past the container into the machine (udev, sysctl, modules, binfmt, kernel file systems,
   tmpfiles, audit) are masked in the container before it boots; sshd gets the lab's host key and client key.
4. systemd (PID 1 of the container's own PID namespace) starts sshd, containerd and the inner dockerd. The
   Fleet sees ``/run/systemd/system`` there and installs its unit instead of the supervisor.

Tear-down is the regular host's: the outer engine removes the container (which ends its PID namespace and so
everything in it), then the namespace sweep and the cgroup sweep catch anything left.
"""

from __future__ import annotations

import fcntl
import io
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from . import _host, _images, _net, _proc
from ._errors import HostStartError, LabError

NAME = "lab-systemd"
IMAGE = "fc-lab/systemd-host"
_TARBALL = "fc-lab-systemd-host.tar"
# debootstrap --include: what a real Debian 12 server running the agent has (the agent needs only python3 and
# docker); iptables for the inner engine's bridge, iproute2 and procps for debugging a test by hand.
_PACKAGES = "systemd,systemd-sysv,openssh-server,python3,docker.io,iptables,iproute2,procps"
_BUILD = _images.RuntimeBuild(IMAGE, "bookworm", _PACKAGES, "lib/systemd/systemd")
_BOOT_WAIT = 120.0
# Masked: each would act on the machine itself from a privileged container (devices, kernel settings, modules,
# mounts of kernel file systems, the audit log) or is of no use in a lab (consoles, apt's timers).
_MASKED = (
    "systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service", "systemd-udev-settle.service", "systemd-hwdb-update.service",
    "systemd-sysctl.service", "systemd-modules-load.service", "kmod-static-nodes.service",
    "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount", "proc-sys-fs-binfmt_misc.mount",
    "sys-kernel-config.mount", "sys-kernel-debug.mount", "sys-kernel-tracing.mount", "sys-fs-fuse-connections.mount",
    "dev-hugepages.mount", "systemd-remount-fs.service", "systemd-random-seed.service",
    "systemd-tmpfiles-setup.service", "systemd-tmpfiles-setup-dev.service", "systemd-tmpfiles-clean.timer",
    "systemd-tmpfiles-clean.service", "systemd-journald-audit.socket", "getty.target", "console-getty.service",
    "systemd-logind.service", "apt-daily.timer", "apt-daily-upgrade.timer", "systemd-firstboot.service",
)
# Not --privileged: this machine's capability bounding set lacks CAP_SYS_RESOURCE, and runc refuses to start a
# privileged container then ("unable to apply caps: operation not permitted"). Every other capability, no seccomp
# or AppArmor profile and unmasked /proc give systemd and the inner engine what they need; runc mounts the cgroup
# hierarchies read-only, so the init script remounts them read-write (this mount only: the cgroup namespace is
# private, so the container sees and writes only its own subtree) and then becomes systemd.
_SECURITY = ["seccomp=unconfined", "apparmor=unconfined"]
_INIT = "/usr/local/sbin/fc-lab-init"
# The whole host is one cgroup here, which competes for CPU with every process of the machine like a single task
# would; a regular lab host's agent threads and instance containers each compete on their own. On a busy machine the
# default (1024) starved this host: its throughput fell to a few requests a second. 8192: like eight such tasks.
_CPU_SHARES = 8192
_INIT_SCRIPT = (b"#!/bin/sh\nset -e\nfor d in /sys/fs/cgroup/*/; do mount -o remount,bind,rw \"$d\"; done\n"
                b"exec /lib/systemd/systemd\n")
# Where the inner engine also listens, inside the container; ``share`` of the host folder is mounted there.
_SHARE = "/fc-lab"


@dataclass(frozen=True, kw_only=True)
class SystemdHostSpec(_host.HostSpec):
    """Names and paths of ``lab-systemd``; ``_host`` builds its namespace, holder and outer engine."""

    index: int = 0

    @property
    def name(self) -> str:
        return NAME

    @property
    def dir(self) -> Path:
        return self.state_dir / "systemd-host"

    @property
    def netns(self) -> str:
        return f"{self.prefix}-sd"

    @property
    def veth_root(self) -> str:
        return f"{self.prefix}vsd"

    @property
    def veth_peer(self) -> str:
        return f"{self.prefix}psd"

    @property
    def address(self) -> str:
        return f"{self.subnet}.250"  # past the regular hosts' .11-.210

    @property
    def outer_socket(self) -> Path:
        return self.dir / "docker.sock"

    @property
    def docker_socket(self) -> Path:
        """The inner engine's socket: the one the agent uses (what ``Lab.docker_client`` talks to)."""
        return self.dir / "share" / "docker.sock"


def build_image(force: bool = False) -> Path:
    """The host's rootfs tarball, built once with debootstrap and cached next to the runtime images."""
    folder = _images.cache_dir()
    target = folder / _TARBALL
    if target.is_file() and not force:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{_TARBALL}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file() and not force:
            return target
        return _images._build(_BUILD, folder, target)


def _outer(spec: SystemdHostSpec, timeout: int = 120) -> docker.DockerClient:
    try:
        return docker.DockerClient(base_url=f"unix://{spec.outer_socket}", version="auto", timeout=timeout)
    except docker.errors.DockerException as exc:
        raise LabError(f"{NAME}: its outer engine is not reachable at {spec.outer_socket}: {exc}") from exc


def _start_outer_dockerd(spec: SystemdHostSpec, holder: int) -> None:
    """The engine that runs the systemd container, in the holder's namespaces like a regular host's engine."""
    argv = [*_host.nsenter(spec, holder), "dockerd", "--data-root", str(spec.dir / "docker"),
            "--exec-root", "/run/docker", "--pidfile", "/run/docker.pid", "-H", f"unix://{spec.outer_socket}",
            "--cgroup-parent", spec.cgroup_parent, "--bridge", "none", "--iptables=false"]
    log = spec.dir / "dockerd.log"
    pid = _host._spawn(argv, log)
    _host._record(spec, "dockerd", pid)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with docker.APIClient(base_url=f"unix://{spec.outer_socket}", version="1.41", timeout=2) as api:
                if api.ping():
                    return
        except Exception:  # not up yet
            pass
        if not _proc.alive(pid):
            break
        time.sleep(0.2)
    raise HostStartError(f"{NAME}: its outer dockerd did not become ready\n{_host._log_tail(log)}")


def teardown(spec: SystemdHostSpec, *, keep_identity: bool = False) -> None:
    """Remove every trace of the host. Idempotent; safe on a half-built host."""
    if spec.outer_socket.is_socket():
        try:
            outer = _outer(spec, timeout=30)
            try:  # killing systemd (PID 1 of the container's PID namespace) ends everything in that namespace
                outer.api.remove_container(NAME, force=True)
            finally:
                outer.close()
        except (LabError, docker.errors.DockerException):
            pass  # the sweeps of the regular tear-down catch what is left
    _host.teardown(spec, keep_identity=keep_identity)


def _boot_files(spec: SystemdHostSpec) -> bytes:
    """A tar of what the container gets before it boots: masks, sshd's key and settings, the engine's socket."""
    sshd = "\n".join([
        f"ListenAddress {spec.address}:22", "HostKey /etc/ssh/ssh_host_ed25519_key", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "PermitRootLogin prohibit-password",
        "UsePAM no", "AllowTcpForwarding local", "X11Forwarding no", "PermitTunnel no", "MaxSessions 64",
        "MaxStartups 64:30:128", "",
    ])
    # The packaged docker.service passes -H fd://; the drop-in adds the shared socket (a flag: daemon.json's
    # "hosts" conflicts with any -H).
    engine = ("[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// -H unix://" + _SHARE + "/docker.sock "
              "--containerd=/run/containerd/containerd.sock\n")
    files: dict[str, tuple[bytes, int]] = {
        "etc/ssh/sshd_config.d/fc-lab.conf": (sshd.encode(), 0o644),
        "etc/ssh/ssh_host_ed25519_key": (spec.host_key.read_bytes(), 0o600),
        "etc/ssh/ssh_host_ed25519_key.pub": (spec.host_key.with_suffix(".pub").read_bytes(), 0o644),
        "root/.ssh/authorized_keys": (spec.authorized_keys.read_bytes(), 0o600),
        "etc/systemd/system/docker.service.d/fc-lab.conf": (engine.encode(), 0o644),
        "etc/hostname": (f"{NAME}\n".encode(), 0o644),
        _INIT.lstrip("/"): (_INIT_SCRIPT, 0o755),
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for folder in ("root/.ssh", "etc/ssh/sshd_config.d", "etc/systemd/system/docker.service.d"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o700 if folder == "root/.ssh" else 0o755
            tar.addfile(info)
        for path, (data, mode) in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        for unit in _MASKED:
            info = tarfile.TarInfo(f"etc/systemd/system/{unit}")
            info.type, info.linkname = tarfile.SYMTYPE, "/dev/null"
            tar.addfile(info)
    return out.getvalue()


def start(spec: SystemdHostSpec) -> None:
    """Build the host from nothing (the caller tears down any remains first)."""
    cgroup = Path("/sys/fs/cgroup")
    if not ((cgroup / "systemd").is_dir() or (cgroup / "cgroup.controllers").exists()):
        raise HostStartError(f"{NAME}: this machine has neither cgroup v2 nor the cgroup v1 name=systemd hierarchy "
                             "(/sys/fs/cgroup/systemd) that systemd in a container needs")
    tarball = build_image()
    spec.dir.mkdir(parents=True, exist_ok=True)
    for sub in ("tmp", "docker", "inner-docker", "share", *_host.AGENT_PATHS):
        (spec.dir / sub).mkdir(exist_ok=True)
    if not spec.host_key.exists():
        _proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(spec.host_key)])
    _net.create_host_net(spec.netns, spec.veth_root, spec.veth_peer, spec.bridge, spec.address, spec.gateway)
    holder = _host._start_holder(spec)
    _host._setup_mounts(spec, holder)
    _start_outer_dockerd(spec, holder)
    outer = _outer(spec)
    try:
        outer.api.import_image_from_file(str(tarball), repository=IMAGE, tag="latest")
        host_config = outer.api.create_host_config(
            cap_add=["ALL"], cap_drop=["SYS_RESOURCE"], security_opt=_SECURITY, network_mode="host",
            cgroupns="private", cpu_shares=_CPU_SHARES, tmpfs={"/run": "", "/run/lock": "", "/tmp": ""},
            binds={str(spec.dir / "inner-docker"): {"bind": "/var/lib/docker", "mode": "rw"},
                   str(spec.dir / "share"): {"bind": _SHARE, "mode": "rw"}})
        host_config.update(MaskedPaths=[], ReadonlyPaths=[])  # `--security-opt systempaths=unconfined`
        created = outer.api.create_container(f"{IMAGE}:latest", [_INIT], name=NAME, hostname=NAME,
                                             environment={"container": "docker"}, stop_signal="SIGRTMIN+3",
                                             host_config=host_config)
        outer.api.put_archive(created["Id"], "/", _boot_files(spec))
        outer.api.start(created["Id"])
    except docker.errors.DockerException as exc:
        raise HostStartError(f"{NAME}: the systemd container did not start: {exc}") from exc
    finally:
        outer.close()
    _wait_booted(spec)


def container_pid(spec: SystemdHostSpec) -> int:
    """The container's systemd (PID 1 inside), as this machine numbers it."""
    outer = _outer(spec, timeout=10)
    try:
        pid = int(outer.api.inspect_container(NAME)["State"]["Pid"])
    except (docker.errors.DockerException, KeyError, ValueError) as exc:
        raise LabError(f"{NAME} is not running: {exc}; run the lab's systemd_host() again") from exc
    finally:
        outer.close()
    if pid <= 0:
        raise LabError(f"{NAME}'s container has stopped")
    return pid


def nsenter(spec: SystemdHostSpec) -> list[str]:
    """argv prefix that runs a command in the container's mount, PID, network and UTS namespaces (a pid read from
    a pidfile there is a pid of that PID namespace)."""
    return ["nsenter", "--target", str(container_pid(spec)), "--mount", "--pid", "--net", "--uts", "--ipc"]


def _systemctl(spec: SystemdHostSpec, *args: str) -> str:
    res = _proc.run([*nsenter(spec), "systemctl", *args], check=False, timeout=30)
    return (res.stdout + res.stderr).strip()


def _wait_booted(spec: SystemdHostSpec) -> None:
    deadline = time.monotonic() + _BOOT_WAIT
    state = ""
    while time.monotonic() < deadline:
        state = _systemctl(spec, "is-system-running")
        if state in ("running", "degraded") and _host.ssh_banner_ok(spec.address) and _host.dockerd_ok(spec):
            return
        time.sleep(0.5)
    failed = _systemctl(spec, "--failed", "--no-legend")
    logs = _proc.run([*nsenter(spec), "journalctl", "-b", "--no-pager", "-n", "40"], check=False).stdout
    raise HostStartError(f"{NAME}: systemd did not boot to a running system with sshd and dockerd "
                         f"(is-system-running: {state!r})\nfailed units: {failed}\n{logs}")


def status(spec: SystemdHostSpec) -> _host.HostStatus:
    holder = _host.live_pid(spec, "holder") is not None and _net.netns_exists(spec.netns)
    try:
        booted = holder and _systemctl(spec, "is-system-running") in ("running", "degraded")
    except LabError:
        booted = False
    return _host.HostStatus(name=NAME, address=spec.address, holder=holder,
                            sshd=booted and _host.ssh_banner_ok(spec.address),
                            dockerd=booted and _host.dockerd_ok(spec))
