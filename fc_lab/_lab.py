"""The lab: a fleet of isolated hosts on this machine, described by ``$STATE/fleet.json``.

State folder layout (default ``/var/lib/fc-lab``, env ``FC_LAB_DIR``)::

    lab.json            prefix, subnet and the root-fs mountpoints this lab created
    fleet.json          the fleet file other code reads
    client/             id_ed25519(.pub), authorized_keys
    hosts/lab-N/        one folder per host (see _host)

``up`` is idempotent: healthy hosts are kept, dead or half-built ones are torn down and rebuilt in
parallel. ``down`` removes everything, including the state folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker

from . import _cleanup, _host, _images, _net, _proc, _systemd_host
from ._errors import LabError
from ._host import HostSpec, HostStatus

DEFAULT_STATE_DIR = Path("/var/lib/fc-lab")
# Paths bind-mounted over inside each host; their state folder must not be hidden by them.
_SHADOWED = (Path("/tmp"), Path("/run"), Path("/var/run"), *(Path(p) for p in _host.AGENT_PATHS.values()))


def default_state_dir() -> Path:
    env = os.environ.get("FC_LAB_DIR")
    return Path(env) if env else DEFAULT_STATE_DIR


def default_prefix() -> str:
    return os.environ.get("FC_LAB_PREFIX") or "fclab"


def default_subnet() -> str:
    return os.environ.get("FC_LAB_SUBNET") or "10.213.0"


class Lab:
    """A lab fleet on this machine.

    state_dir: folder for all lab state; default ``$FC_LAB_DIR`` or ``/var/lib/fc-lab``. Must not lie
        under /tmp, /run or the agent paths, which each host mounts over.
    prefix: names the netns (``{prefix}-{i}``), veths, bridge (``{prefix}br``) and dockerd cgroup parent;
        at most 10 characters so that interface names fit in 15. Default ``$FC_LAB_PREFIX`` or ``fclab``.
    subnet: first three octets of the lab's /24; host i gets ``{subnet}.{10+i}``, the bridge ``.1``.
        Default ``$FC_LAB_SUBNET`` or ``10.213.0``.

    Two labs with different state dirs, prefixes and subnets run side by side (e.g. two checkouts testing at once).
    """

    def __init__(self, state_dir: Path | None = None, *, prefix: str | None = None,
                 subnet: str | None = None) -> None:
        prefix = prefix or default_prefix()
        subnet = subnet or default_subnet()
        self.state_dir = Path(state_dir if state_dir is not None else default_state_dir()).absolute()
        if not re.fullmatch(r"[a-z][a-z0-9]{0,9}", prefix):
            raise LabError(f"prefix {prefix!r}: use 1-10 lowercase letters/digits (interface names are <= 15 chars)")
        octets = subnet.split(".")
        if len(octets) != 3 or not all(o.isdigit() and int(o) <= 255 for o in octets):
            raise LabError(f"subnet {subnet!r}: expected three octets like 10.213.0")
        for shadow in _SHADOWED:
            if self.state_dir == shadow or shadow in self.state_dir.parents:
                raise LabError(f"state dir {self.state_dir} lies under {shadow}, which every host mounts over")
        self.prefix = prefix
        self.subnet = subnet

    # --- public API ---------------------------------------------------------------------------

    def up(self, n_hosts: int = 3) -> dict[str, Any]:
        """Make the lab run exactly hosts lab-1..n_hosts, healthy, with the runtime image; return the fleet."""
        if not 1 <= n_hosts <= 200:
            raise LabError("n_hosts must be between 1 and 200")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._prepare(mountpoints=True)
            wanted = [self._spec(i) for i in range(1, n_hosts + 1)]
            extra = [s for s in self._existing_specs() if s.index > n_hosts]
            with ThreadPoolExecutor(max_workers=max(1, min(8, n_hosts + 1))) as pool:
                image = pool.submit(_images.build_runtime_image)
                list(pool.map(lambda s: _host.teardown(s), extra))
                list(pool.map(self._ensure_host, wanted))
                tar = image.result()
                list(pool.map(lambda s: self._ensure_image(s, tar), wanted))
            fleet = self._fleet_dict(wanted)
            self._write_json(self.state_dir / "fleet.json", fleet)
            return fleet

    def down(self) -> None:
        """Remove every host, the bridge, created mountpoints and the state folder. Idempotent."""
        # Created if missing, so a lab whose state folder was deleted by hand is still cleaned up.
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            meta = self._meta()
            # The recorded names win, so down works whatever prefix this object was built with.
            prefix, subnet = meta.get("prefix", self.prefix), meta.get("subnet", self.subnet)
            specs = {s.index: s for s in self._existing_specs(prefix, subnet)}
            with ThreadPoolExecutor(max_workers=max(1, min(8, len(specs)))) as pool:
                list(pool.map(lambda s: _host.teardown(s), specs.values()))
            _systemd_host.teardown(self._systemd_spec(prefix, subnet))
            _net.delete_link(f"{prefix}br")
            _net.release_netns_dir(mounted=meta.get("netns_dir_mounted", False),
                                   created=meta.get("netns_dir_created", False))
            for path in reversed(meta.get("created_mountpoints", [])):
                p = Path(path)
                if p.is_dir() and not any(p.iterdir()) and not _cleanup.mounted_anywhere(path):
                    p.rmdir()
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def status(self) -> list[HostStatus]:
        """Health of every host that has a folder in the state dir, in index order."""
        return [_host.status(s) for s in self._existing_specs()]

    def fleet(self) -> dict[str, Any]:
        """The fleet file as a dict."""
        try:
            fleet: dict[str, Any] = json.loads((self.state_dir / "fleet.json").read_text())
            return fleet
        except (OSError, ValueError) as exc:
            raise LabError(f"no readable fleet file in {self.state_dir}; run `fc-lab up`") from exc

    def _prepare(self, *, mountpoints: bool) -> None:
        """What every host of the lab needs first (under the lab's lock): this lab owns its folder, the client key,
        the netns folder and the bridge; ``mountpoints``: the folders the namespace hosts bind over."""
        meta = self._meta()
        self._check_owner(meta)
        self._write_meta({**meta, "prefix": self.prefix, "subnet": self.subnet})
        self._ensure_client_key()
        if mountpoints:
            self._ensure_mountpoints()
        self._note_netns_dir()
        _net.ensure_bridge(f"{self.prefix}br", f"{self.subnet}.1")

    def systemd_host(self) -> dict[str, Any]:
        """The extra host ``lab-systemd``, whose init is systemd (see ``_systemd_host``), started on first use and
        kept until ``down``; returns its entry in the shape of the fleet file's hosts. It is not in fleet.json:
        only the tests that need systemd deploy to it. Raises LabError when it cannot run here."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._prepare(mountpoints=False)
            spec = self._systemd_spec()
            _restart_unless_healthy(_systemd_host, spec)
            self._ensure_image(spec, _images.build_runtime_image())
            return self._host_entry(spec)

    def docker_client(self, host_name: str) -> docker.DockerClient:
        """A Docker client talking to that host's engine through its socket in the state folder."""
        return _host.docker_client(self._spec_by_name(host_name))

    def ensure_runtime_images(self, runtimes: Sequence[str], hosts: Sequence[str] | None = None) -> None:
        """Builds (once, cached) the images of ``runtimes`` and loads them on the hosts (default: all) that lack
        them. Lab hosts get python3.11 at ``up``; the other runtimes' images only where tests run them."""
        specs = [s for s in self._existing_specs() if hosts is None or s.name in hosts]
        for runtime in runtimes:
            tar = _images.build_runtime_image(runtime=runtime)
            with ThreadPoolExecutor(max_workers=max(1, min(8, len(specs)))) as pool:
                list(pool.map(lambda s: self._ensure_image(s, tar, runtime), specs))

    def build_image(self, context: Path, tag: str, hosts: Sequence[str] | None = None) -> dict[str, str]:
        """Builds ``context``'s Dockerfile as ``tag`` on each lab host's engine (all hosts by default): no registry
        is reachable, so an image a function runs must exist on every host it is placed on. Returns host -> id."""
        built = {}
        for name in hosts or [h["name"] for h in self.fleet()["hosts"]]:
            client = self.docker_client(name)
            try:
                built[name] = _images.build_context_image(client, Path(context), tag)
            finally:
                client.close()
        return built

    def run(self, host_name: str, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """subprocess.run(argv) inside the host's mount and network namespaces."""
        spec = self._spec_by_name(host_name)
        if isinstance(spec, _systemd_host.SystemdHostSpec):
            return subprocess.run([*_systemd_host.nsenter(spec), *argv], **kwargs)
        return subprocess.run([*_host.nsenter(spec), *argv], **kwargs)

    @property
    def client_key_path(self) -> Path:
        return self.state_dir / "client" / "id_ed25519"

    @property
    def fleet_path(self) -> Path:
        return self.state_dir / "fleet.json"

    # --- internals ----------------------------------------------------------------------------

    def _spec(self, index: int, prefix: str | None = None, subnet: str | None = None) -> HostSpec:
        return HostSpec(index=index, prefix=prefix or self.prefix, subnet=subnet or self.subnet,
                        state_dir=self.state_dir)

    def _systemd_spec(self, prefix: str | None = None, subnet: str | None = None) -> _systemd_host.SystemdHostSpec:
        return _systemd_host.SystemdHostSpec(prefix=prefix or self.prefix, subnet=subnet or self.subnet,
                                             state_dir=self.state_dir)

    def _spec_by_name(self, host_name: str) -> HostSpec:
        if host_name == _systemd_host.NAME:
            meta = self._meta()
            return self._systemd_spec(meta.get("prefix"), meta.get("subnet"))
        m = re.fullmatch(r"lab-(\d+)", host_name)
        if not m:
            raise LabError(f"unknown host {host_name!r}; hosts are named lab-1..lab-N")
        meta = self._meta()
        return self._spec(int(m.group(1)), meta.get("prefix"), meta.get("subnet"))

    def _existing_specs(self, prefix: str | None = None, subnet: str | None = None) -> list[HostSpec]:
        """Hosts that may have remains: a folder, a netns or a veth of ours."""
        meta = self._meta()
        prefix = prefix or meta.get("prefix") or self.prefix
        subnet = subnet or meta.get("subnet") or self.subnet
        indexes: set[int] = set()
        hosts = self.state_dir / "hosts"
        if hosts.is_dir():
            indexes |= {int(m.group(1)) for p in hosts.iterdir() if (m := re.fullmatch(r"lab-(\d+)", p.name))}
        if _net.NETNS_DIR.is_dir():
            indexes |= {int(m.group(1)) for p in _net.NETNS_DIR.iterdir()
                        if (m := re.fullmatch(re.escape(prefix) + r"-(\d+)", p.name))}
        indexes |= {int(m.group(1)) for p in Path("/sys/class/net").iterdir()
                    if (m := re.fullmatch(re.escape(prefix) + r"v(\d+)", p.name))}
        return [self._spec(i, prefix, subnet) for i in sorted(indexes)]

    def _ensure_host(self, spec: HostSpec) -> None:
        _restart_unless_healthy(_host, spec)

    def _ensure_image(self, spec: HostSpec, tar: Path, runtime: str = _images.DEFAULT_RUNTIME) -> None:
        client = _host.docker_client(spec, timeout=300)
        try:
            if not _images.has_runtime_image(client, runtime):
                _images.load_runtime_image(client, tar, runtime)
        finally:
            client.close()

    def _fleet_dict(self, specs: list[HostSpec]) -> dict[str, Any]:
        hosts = [self._host_entry(s) for s in specs]
        return {"name": "lab", "ssh_user": "root", "ssh_private_key_path": str(self.client_key_path), "hosts": hosts}

    @staticmethod
    def _host_entry(spec: HostSpec) -> dict[str, Any]:
        key_type, key_b64 = spec.host_key.with_suffix(".pub").read_text().split()[:2]
        return {"name": spec.name, "address": spec.address, "port": 22, "host_public_key": f"{key_type} {key_b64}",
                "labels": {}, "docker_socket": str(spec.docker_socket)}

    def _ensure_client_key(self) -> None:
        client = self.state_dir / "client"
        client.mkdir(mode=0o700, exist_ok=True)
        # sshd opens authorized_keys as the user logging in: a non-root SSH user (tests/test_sudo_user.py) must be
        # able to traverse the folder. Nothing in it can be listed, and the private key stays 0600.
        client.chmod(0o711)
        if not self.client_key_path.exists():
            _proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fc-lab-client",
                       "-f", str(self.client_key_path)])
        pub = self.client_key_path.with_suffix(".pub").read_text()
        (client / "authorized_keys").write_text(pub)

    def _ensure_mountpoints(self) -> None:
        meta = self._meta()
        created: list[str] = meta.get("created_mountpoints", [])
        for target in _host.AGENT_PATHS.values():
            # Record each folder we create (parents first) so down removes exactly those.
            missing = [p for p in [*reversed(Path(target).parents), Path(target)] if not p.exists()]
            for p in missing:
                p.mkdir()
                created.append(str(p))
        meta["created_mountpoints"] = created
        self._write_meta(meta)

    def _note_netns_dir(self) -> None:
        # `ip netns add` makes /run/netns (a dir, then a bind mount); note what we caused so down can undo it.
        meta = self._meta()
        if not _net.NETNS_DIR.exists():
            meta["netns_dir_created"] = True
        if not _net.netns_dir_mounted():
            meta["netns_dir_mounted"] = True
        self._write_meta(meta)

    def _check_owner(self, meta: dict[str, Any]) -> None:
        if meta and (meta.get("prefix"), meta.get("subnet")) != (self.prefix, self.subnet):
            raise LabError(f"{self.state_dir} holds a lab with prefix {meta.get('prefix')!r} and subnet "
                           f"{meta.get('subnet')!r}; run down first")

    def _meta(self) -> dict[str, Any]:
        try:
            meta: dict[str, Any] = json.loads((self.state_dir / "lab.json").read_text())
            return meta
        except (OSError, ValueError):
            return {}

    def _write_meta(self, meta: dict[str, Any]) -> None:
        self._write_json(self.state_dir / "lab.json", meta)

    @staticmethod
    def _write_json(path: Path, data: dict[str, Any]) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # One writer per lab: a second `fc-lab up` waits instead of racing over the same namespaces.
        with open(self.state_dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield


def _restart_unless_healthy(kind: Any, spec: HostSpec) -> None:
    """A host (``kind``: the ``_host`` or ``_systemd_host`` module) that is not healthy is torn down, keeping its
    identity (host key, address), and started again; a start that fails leaves nothing half made."""
    if kind.status(spec).healthy:
        return
    kind.teardown(spec, keep_identity=True)
    try:
        kind.start(spec)
    except LabError:
        kind.teardown(spec, keep_identity=True)
        raise
