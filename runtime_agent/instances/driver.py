"""The container driver: the only place that speaks to the container engine.

``ContainerDriver`` is the interface the instance runners use; ``DockerDriver`` implements it with the docker SDK.
Every engine failure is translated here into ``DriverError`` so that docker's exceptions never leak upward.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from typing import Protocol

import docker
import docker.errors
from docker.types import DeviceRequest, Mount

from .freezer import Freezer, FreezerError

AGENT_LABEL = "fc.agent"  # value: the host name of the agent that owns the container
FUNCTION_LABEL = "fc.function"
INSTANCE_LABEL = "fc.instance"
VERSION_LABEL = "fc.version"  # LATEST or the published version id whose pool the instance belongs to (for operators)


CPU_PERIOD_US = 100_000


def _quota(cpu: float) -> int:
    return max(1000, int(cpu * CPU_PERIOD_US))


class DriverError(Exception):
    """The container engine refused or failed an operation."""


class GpuRuntimeMissing(DriverError):
    """dockerd has no device driver for the GPU request (no NVIDIA hook, no CDI): "no GPU runtime"."""


GPU_RUNTIME_HINT = ("install nvidia-container-toolkit and run `nvidia-ctk runtime configure --runtime=docker`, then "
                    "restart dockerd (or, on Docker 25+ with CDI enabled, `nvidia-ctk cdi generate "
                    "--output=/etc/cdi/nvidia.yaml`)")


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    command: list[str] | None  # None: the image's own CMD
    environment: dict[str, str]
    labels: dict[str, str]
    read_only_binds: dict[str, str]  # host path -> container path
    memory_mb: int
    cpu: float
    tmp_size_mb: int
    pids_limit: int = 512
    user: str = "65534:65534"
    # "bridge", or the internal network of instances without internet access (the agent still reaches them).
    network: str = "bridge"
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_opt: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None  # None: the image's own ENTRYPOINT
    # CPU granted while the instance starts (then lowered to ``cpu``): a 128 MB function's 1/16 vCPU would
    # stretch the Python start to a second under CFS throttling.
    startup_cpu: float | None = None
    working_dir: str | None = None
    # GPU cards by explicit id (UUIDs, or CDI names), never a count; gpu_driver "nvidia" or "cdi". Empty: none.
    gpu_driver: str | None = None
    gpu_device_ids: tuple[str, ...] = ()
    # host path -> container path, read-only and rslave: mounts the agent makes later under the host path appear
    # in the container (a stem cell's code folder, instances/mounts.py).
    propagated_binds: dict[str, str] = field(default_factory=dict)

    def device_requests(self) -> list[DeviceRequest] | None:
        if not self.gpu_device_ids:
            return None
        capabilities = [["gpu"]] if self.gpu_driver == "nvidia" else []
        return [DeviceRequest(driver=self.gpu_driver or "nvidia", device_ids=list(self.gpu_device_ids),
                              capabilities=capabilities)]


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    labels: dict[str, str]
    running: bool
    address: str
    pid: int = 0  # the container's init process, whose cgroup the freezer uses


class ContainerDriver(Protocol):
    def start(self, spec: ContainerSpec) -> ContainerInfo: ...

    def destroy(self, container_id: str) -> None: ...

    def list_owned(self, agent_name: str) -> list[ContainerInfo]: ...

    def inspect(self, container_id: str) -> ContainerInfo: ...

    def set_cpu(self, container_id: str, cpu: float) -> None: ...

    def update_limits(self, container_id: str, memory_mb: int, cpu: float) -> None: ...

    def rename(self, container_id: str, name: str) -> None: ...

    def has_image(self, image: str) -> bool: ...

    def load_image(self, path: str, ref: str) -> None: ...

    def exit_report(self, container_id: str) -> str | None: ...

    def ensure_network(self, name: str, *, internal: bool) -> None: ...

    def engine_info(self) -> dict: ...


class DockerDriver:
    def __init__(self, base_url: str) -> None:
        try:
            self._client = docker.DockerClient(base_url=base_url, version="auto", timeout=60)
        except docker.errors.DockerException as exc:
            raise DriverError(f"cannot reach the container engine at {base_url}: {exc}") from exc

    def start(self, spec: ContainerSpec) -> ContainerInfo:
        container_id = self.create(spec)
        try:
            self._client.api.start(container_id)
            return self.inspect(container_id)
        except docker.errors.DockerException as exc:
            self.destroy(container_id)
            if "could not select device driver" in str(exc):
                raise GpuRuntimeMissing(f"cannot start container {spec.name}: no GPU runtime: dockerd has no "
                                        f"{spec.gpu_driver!r} device driver ({exc}); {GPU_RUNTIME_HINT}") from exc
            raise DriverError(f"cannot start container {spec.name}: {exc}") from exc

    def create(self, spec: ContainerSpec) -> str:
        """Creates the container of ``spec`` without starting it; returns its id."""
        mounts = [
            Mount(target=target, source=source, type="bind", read_only=True)
            for source, target in spec.read_only_binds.items()
        ] + [
            Mount(target=target, source=source, type="bind", read_only=True, propagation="rslave")
            for source, target in spec.propagated_binds.items()
        ]
        try:
            container = self._client.containers.create(
                spec.image,
                spec.command,
                name=spec.name,
                detach=True,
                environment=spec.environment,
                labels=spec.labels,
                mounts=mounts,
                user=spec.user,
                mem_limit=f"{spec.memory_mb}m",
                memswap_limit=f"{spec.memory_mb}m",
                cpu_period=CPU_PERIOD_US,
                cpu_quota=_quota(spec.startup_cpu or spec.cpu),
                pids_limit=spec.pids_limit,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                read_only=True,
                tmpfs={"/tmp": f"size={spec.tmp_size_mb}m,mode=1777"},
                network=spec.network,
                dns=spec.dns or None,
                dns_search=spec.dns_search or None,
                dns_opt=spec.dns_opt or None,
                entrypoint=spec.entrypoint,
                working_dir=spec.working_dir,
                device_requests=spec.device_requests(),
            )
        except docker.errors.ImageNotFound as exc:
            raise DriverError(f"image {spec.image!r} is not present on this host") from exc
        except docker.errors.DockerException as exc:
            raise DriverError(f"cannot start container {spec.name}: {exc}") from exc
        return container.id

    def engine_info(self) -> dict:
        """Docker's GET /info (server version, runtimes, CDI spec dirs): what GPU support the host has."""
        try:
            return self._client.api.info()
        except docker.errors.DockerException as exc:
            raise DriverError(f"cannot read the container engine's info: {exc}") from exc

    def exit_report(self, container_id: str) -> str | None:
        """None while the container runs; else its exit code and the last lines it wrote."""
        try:
            state = self._client.api.inspect_container(container_id)["State"]
            if state.get("Running"):
                return None
            logs = self._client.api.logs(container_id, tail=5).decode(errors="replace").strip()
        except docker.errors.DockerException as exc:
            return f"cannot be inspected: {exc}"
        return f"exited with code {state.get('ExitCode')}" + (f"; its last output: {logs}" if logs else "")

    def has_image(self, image: str) -> bool:
        try:
            self._client.api.inspect_image(image)
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.DockerException as exc:
            raise DriverError(f"cannot look up image {image!r}: {exc}") from exc

    def load_image(self, path: str, ref: str) -> None:
        """Loads an image tarball as ``ref``: a ``docker save`` archive (it has manifest.json) is loaded, a root
        filesystem tarball (what the project builds) is imported."""
        last = ref.rsplit("/", 1)[-1]
        repository, tag = (ref.rsplit(":", 1) if ":" in last else (ref, "latest"))
        try:
            with tarfile.open(path) as tar:
                saved = any(m.name in ("manifest.json", "./manifest.json") for m in tar)
            if saved:
                with open(path, "rb") as f:
                    for image in self._client.images.load(f):
                        image.tag(repository, tag)
            else:
                self._client.api.import_image_from_file(path, repository=repository, tag=tag)
        except (docker.errors.DockerException, OSError, tarfile.TarError) as exc:
            raise DriverError(f"loading image {ref} from {path} failed: {exc}") from exc
        if not self.has_image(ref):
            raise DriverError(f"image {ref} is missing after loading {path}")

    def ensure_network(self, name: str, *, internal: bool) -> None:
        """Creates the bridge network ``name`` once. ``internal``: no route out of the host (docker drops its
        forwarded traffic), while the host itself still reaches the containers on it."""
        try:
            if any(n["Name"] == name for n in self._client.api.networks(names=[name])):
                return
            self._client.api.create_network(name, driver="bridge", internal=internal,
                                            labels={AGENT_LABEL: "network"}, check_duplicate=True)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # another start created it first
                raise DriverError(f"cannot create network {name}: {exc}") from exc
        except docker.errors.DockerException as exc:
            raise DriverError(f"cannot create network {name}: {exc}") from exc

    def remove_networks(self) -> None:
        """Removes the networks ``ensure_network`` created (when uninstalling)."""
        try:
            for network in self._client.api.networks(filters={"label": f"{AGENT_LABEL}=network"}):
                self._client.api.remove_network(network["Id"])
        except docker.errors.DockerException as exc:
            raise DriverError(f"cannot remove the agent's networks: {exc}") from exc

    def set_cpu(self, container_id: str, cpu: float) -> None:
        try:
            self._client.api.update_container(container_id, cpu_period=CPU_PERIOD_US, cpu_quota=_quota(cpu))
        except docker.errors.DockerException as exc:
            raise DriverError(f"cannot set the CPU limit of {container_id[:12]}: {exc}") from exc

    def update_limits(self, container_id: str, memory_mb: int, cpu: float) -> None:
        """Records memory and CPU limits with the engine (``docker update``): what ``docker inspect`` shows."""
        try:
            self._client.api.update_container(container_id, mem_limit=f"{memory_mb}m",
                                              memswap_limit=f"{memory_mb}m", cpu_period=CPU_PERIOD_US,
                                              cpu_quota=_quota(cpu))
        except docker.errors.DockerException as exc:
            raise DriverError(f"cannot update the limits of {container_id[:12]}: {exc}") from exc

    def rename(self, container_id: str, name: str) -> None:
        """Names the container ``name`` (a stem cell, once it is an instance: issue 15); a no-op if it has it."""
        try:
            if self._client.api.inspect_container(container_id)["Name"].lstrip("/") != name:
                self._client.api.rename(container_id, name)
        except docker.errors.DockerException as exc:
            raise DriverError(f"cannot rename {container_id[:12]} to {name}: {exc}") from exc

    def destroy(self, container_id: str) -> None:
        try:
            pid = int(self._client.api.inspect_container(container_id)["State"].get("Pid") or 0)
            if pid:  # a frozen container ignores the kill: thaw first (harmless when it is not frozen)
                try:
                    Freezer.for_pid(pid).thaw()
                except FreezerError:
                    pass
            self._client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as exc:
            raise DriverError(f"cannot remove container {container_id[:12]}: {exc}") from exc

    def list_owned(self, agent_name: str) -> list[ContainerInfo]:
        try:
            raw = self._client.api.containers(all=True, filters={"label": f"{AGENT_LABEL}={agent_name}"})
        except docker.errors.DockerException as exc:
            raise DriverError(f"cannot list containers: {exc}") from exc
        result = []
        for c in raw:
            networks = (c.get("NetworkSettings") or {}).get("Networks") or {}
            address = next((n.get("IPAddress") or "" for n in networks.values()), "")
            result.append(ContainerInfo(c["Id"], c.get("Labels") or {}, c.get("State") == "running", address))
        return result

    def inspect(self, container_id: str) -> ContainerInfo:
        try:
            return _info(self._client.api.inspect_container(container_id))
        except docker.errors.DockerException as exc:
            raise DriverError(f"cannot inspect container {container_id[:12]}: {exc}") from exc


def _info(attrs: dict) -> ContainerInfo:
    networks = attrs["NetworkSettings"].get("Networks") or {}
    address = next((n.get("IPAddress") or "" for n in networks.values()), "")
    return ContainerInfo(attrs["Id"], attrs["Config"].get("Labels") or {}, attrs["State"]["Running"], address,
                         int(attrs["State"].get("Pid") or 0))
