"""Validation of resource inputs with pydantic, reported as Pulumi CheckFailures that name the property and the
rule. Values still unknown during a preview are accepted here and validated when they are known."""

from __future__ import annotations

import re
from typing import Any, Literal

import pulumi
import pulumi.output
from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, ValidationError, field_validator, model_validator

from fc_common import gpu as gpus
from fc_common import runtimes

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # pulumi.dynamic's marker for a value unknown at preview

FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
ENV_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$")
# registry[:port]/path[:tag][@sha256:digest], as Docker parses it
IMAGE_REF = r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=False)


class CapacityModel(_Strict):
    cpu: float = Field(gt=0)
    memory_mb: int = Field(ge=128)


class HostModel(_Strict):
    name: str = Field(min_length=1, max_length=64)
    address: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(default="root", min_length=1)
    host_public_key: str = Field(pattern=r"^(ssh-ed25519|ecdsa-sha2-nistp\d+|ssh-rsa) [A-Za-z0-9+/=]+$")
    labels: dict[str, str] = Field(default_factory=dict)
    capacity: CapacityModel | None = None
    gpus: dict[str, Any] | None = None

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        try:
            gpus.parse_host_gpus(v)
        except gpus.GpuConfigError as exc:
            raise ValueError(str(exc)) from None
        return v


class InvokePortGuardsModel(_Strict):
    model_config = ConfigDict(extra="forbid")  # a misspelt guard must not silently fall back to its default
    head_timeout_seconds: float = Field(default=10.0, ge=1, le=300)
    keepalive_timeout_seconds: float = Field(default=60.0, ge=1, le=3600)
    max_connections: int = Field(default=1024, ge=16, le=65536)


class StemCellsModel(_Strict):
    """The agent's ``stem_cells`` (runtime_agent/instances/cellpolicy.CellSettings checks the same on the host)."""

    enabled: bool = True
    min_per_runtime: int = Field(default=1, ge=0, le=64)
    max_per_runtime: int = Field(default=4, ge=0, le=64)
    window_seconds: float = Field(default=300, gt=0)
    runtimes: list[str] | None = None
    memory_mb: int = Field(default=128, ge=64)

    @field_validator("runtimes")
    @classmethod
    def _builtin(cls, v: list[str] | None) -> list[str] | None:
        wrong = [r for r in v or [] if r not in runtimes.BUILTIN]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: not built-in runtimes (stem cells exist for "
                             f"{', '.join(runtimes.BUILTIN)})")
        return v

    @model_validator(mode="after")
    def _bounds(self) -> "StemCellsModel":
        if self.min_per_runtime > self.max_per_runtime:
            raise ValueError("min_per_runtime must not exceed max_per_runtime")
        return self


class NatsQueueModel(_Strict):
    """``task_queue: {"nats": {...}}``: the fleet's JetStream cluster (runtime_agent/events/natsqueue.py)."""

    model_config = ConfigDict(extra="forbid")
    hosts: list[str] = Field(min_length=3, max_length=5)
    ack_wait_seconds: float = Field(default=30, ge=3, le=600)

    @field_validator("hosts")
    @classmethod
    def _odd_and_distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("the queue's hosts must be distinct")
        if len(v) % 2 == 0:
            raise ValueError("an odd number of hosts (3 or 5): JetStream needs a majority to accept a write")
        return v


class TaskQueueModel(_Strict):
    model_config = ConfigDict(extra="forbid")
    nats: NatsQueueModel


class FleetModel(_Strict):
    hosts: list[HostModel] = Field(min_length=1)
    ssh_private_key: str = Field(min_length=1)
    control_port: int = Field(default=7701, ge=1, le=65535)
    invoke_port: int = Field(default=9000, ge=1, le=65535)
    runtime_images: dict[str, str] = Field(default_factory=dict)
    idle_timeout_seconds: float = Field(default=300, gt=0)
    invoke_port_guards: InvokePortGuardsModel = Field(default_factory=InvokePortGuardsModel)
    lock_timeout_seconds: float = Field(default=120, ge=0, le=86400)
    stem_cells: StemCellsModel | None = None
    images: dict[str, dict[str, Any]] = Field(default_factory=dict)  # ref -> {path, sha256}: checked by the Fleet
    task_queue: Any = "local"  # "local" or a TaskQueueModel (see _task_queue)

    @field_validator("hosts")
    @classmethod
    def _unique_names(cls, hosts: list[HostModel]) -> list[HostModel]:
        names = [h.name for h in hosts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"host names must be unique; repeated: {', '.join(dupes)}")
        return hosts

    @field_validator("task_queue", mode="before")
    @classmethod
    def _task_queue(cls, v: Any) -> Any:
        if v in (None, "local"):
            return "local"
        if not isinstance(v, dict) or set(v) != {"nats"}:
            raise ValueError(f'{str(v)[:60]!r} is neither "local" nor {{"nats": {{"hosts": [3 host names], '
                             f'"ack_wait_seconds": 30}}}} (fc.NatsTaskQueueArgs)')
        try:
            return TaskQueueModel.model_validate(v)
        except ValidationError as exc:
            raise ValueError("; ".join(f"{'.'.join(str(p) for p in e['loc'])}: "
                                       f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())) from None

    @model_validator(mode="after")
    def _queue_hosts_in_fleet(self) -> "FleetModel":
        if isinstance(self.task_queue, TaskQueueModel):
            names = {h.name for h in self.hosts}
            unknown = [n for n in self.task_queue.nats.hosts if n not in names]
            if unknown:
                raise ValueError(f"task_queue.nats.hosts: {', '.join(unknown)} not among the fleet's hosts "
                                 f"({', '.join(sorted(names))})")
        return self


class HookModel(_Strict):
    handler: str = Field(pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
    timeout: int = Field(default=3, ge=1)


class InitializerModel(HookModel):
    timeout: int = Field(default=3, ge=1, le=600)


class PreStopModel(HookModel):
    timeout: int = Field(default=3, ge=1, le=900)


class LifecycleModel(_Strict):
    initializer: InitializerModel | None = None
    pre_stop: PreStopModel | None = None


class HealthCheckModel(_Strict):
    http_get_url: str = Field(default="/", pattern=r"^/")
    initial_delay_seconds: int = Field(default=0, ge=0, le=120)
    period_seconds: int = Field(default=3, ge=1, le=120)
    timeout_seconds: int = Field(default=1, ge=1, le=3)
    failure_threshold: int = Field(default=3, ge=1, le=120)
    success_threshold: int = Field(default=1, ge=1, le=120)


class CustomRuntimeModel(_Strict):
    command: list[str] = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    port: int = Field(default=9000, ge=1, le=65535)
    health_check_config: HealthCheckModel | None = None


class CustomContainerModel(_Strict):
    image: str = Field(pattern=IMAGE_REF)
    port: int = Field(default=9000, ge=1, le=65535)
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    health_check_config: HealthCheckModel | None = None


class DnsOptionModel(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    value: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9:._-]*$")


class CustomDnsModel(_Strict):
    # resolv.conf honours at most 3 name servers and 6 search domains.
    name_servers: list[IPvAnyAddress] = Field(default_factory=list, max_length=3)
    searches: list[str] = Field(default_factory=list, max_length=6)
    dns_options: list[DnsOptionModel] = Field(default_factory=list, max_length=10)

    @field_validator("searches")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        for domain in v:
            if not DOMAIN.match(domain):
                raise ValueError(f"search domain {domain!r} must be a DNS name (letters, digits, '-', '.')")
        return v


class LogConfigModel(_Strict):
    # Names follow FC's SLS rules; on a host they also name the log file, so nothing else may pass.
    project: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
    logstore: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,61}[a-z0-9]$")
    enable_request_metrics: bool = False
    enable_instance_metrics: bool = False
    log_begin_rule: Literal["None", "DefaultRegex"] = "None"


class GpuConfigModel(_Strict):
    """FC's gpuConfig; the card rules (whole cards, cpu/memory choices) are checked with the function's other
    fields in FunctionModel."""

    gpu_type: str = Field(min_length=1)
    gpu_memory_size: int = Field(gt=0)

    @field_validator("gpu_type")
    @classmethod
    def _known(cls, v: str) -> str:
        try:
            return gpus.card_type(v).name
        except gpus.GpuConfigError as exc:
            raise ValueError(str(exc).removeprefix("gpu_config.gpu_type ")) from None


class SelectorPlacementModel(_Strict):
    selector: dict[str, str] = Field(min_length=1)
    replicas: int = Field(default=1, ge=1, le=1000)


def _tags(v: dict[str, str]) -> dict[str, str]:
    if len(v) > 20:
        raise ValueError("at most 20 tags")
    for key, value in v.items():
        if not 1 <= len(key) <= 128 or key.startswith(("aliyun", "acs:")) or "://" in key:
            raise ValueError(f"tag key {key!r} must be 1-128 characters, not start with 'aliyun' or 'acs:' and "
                             "hold no URL")
        if len(value) > 128 or "://" in value:
            raise ValueError(f"tag value of {key!r} must be at most 128 characters and hold no URL")
    return v


RUNTIMES = runtimes.ALL


class FunctionModel(_Strict):
    function_name: str
    description: str = Field(default="", max_length=256)
    runtime: str = "python3.11"
    handler: str = Field(default="index.handler", pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
    # Up to 32768 MB, more only with gpu_config (its cards' choices): checked in _ratios.
    memory_size: int = Field(default=128, ge=128, le=98304 * gpus.MAX_CARDS_PER_INSTANCE, multiple_of=64)
    cpu: float | None = Field(default=None, ge=0.05, le=16 * gpus.MAX_CARDS_PER_INSTANCE)
    timeout: int = Field(default=3, ge=1, le=86400)
    disk_size: Literal[512, 10240] = 512
    instance_concurrency: int = Field(default=1, ge=1, le=200)
    max_instances: int = Field(default=10, ge=1, le=10000)
    min_instances: int = Field(default=0, ge=0, le=10000)
    hibernation: bool = False
    instance_lifecycle_config: LifecycleModel | None = None
    custom_runtime_config: CustomRuntimeModel | None = None
    custom_container_config: CustomContainerModel | None = None
    environment_variables: dict[str, str] = Field(default_factory=dict)
    internet_access: bool = True
    custom_dns: CustomDnsModel | None = None
    log_config: LogConfigModel | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    placement: list[str] | SelectorPlacementModel | None = None
    # Layer version ARNs, first-listed first (the rules, which take each entry on its own: releases.layer_failures)
    # and, aligned with them, the compatible_runtime of those declared as LayerVersion objects (None elsewhere).
    layers: list[str] = Field(default_factory=list)
    layer_runtimes: list[list[str] | None] | None = None
    gpu_config: GpuConfigModel | None = None
    # Set by the program from `code`: the package's sha256, or why the code could not be packed.
    code_checksum: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    code_error: str | None = None

    @field_validator("function_name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not FUNCTION_NAME.match(v):
            raise ValueError("must be 1-64 characters of letters, digits, '_' or '-', starting with a letter or '_'")
        return v

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, v: str) -> str:
        if v not in runtimes.ALL:
            raise ValueError(f"{v!r} is not a runtime; one of {', '.join(runtimes.BUILT_HERE)} (images built here), or "
                             f"{', '.join(runtimes.NOT_BUILT)} mapped to your own image in FleetArgs.runtime_images")
        return v

    @field_validator("cpu")
    @classmethod
    def _cpu_step(cls, v: float | None) -> float | None:
        if v is not None and abs(round(v / 0.05) * 0.05 - v) > 1e-9:
            raise ValueError("must be a multiple of 0.05 vCPU")
        return round(v, 2) if v is not None else None

    @field_validator("environment_variables")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not ENV_KEY.match(key):
                raise ValueError(f"key {key!r} must start with a letter and hold only letters, digits and '_'")
            if key.upper().startswith("FC_"):
                raise ValueError(f"key {key!r} uses the reserved prefix FC_")
        if sum(len(k) + len(str(val)) for k, val in v.items()) > 4096:
            raise ValueError("must be 4 KB or less in total (keys plus values)")
        return v

    @field_validator("tags")
    @classmethod
    def _tag_rules(cls, v: dict[str, str]) -> dict[str, str]:
        return _tags(v)

    @field_validator("placement")
    @classmethod
    def _hosts(cls, v: list[str] | SelectorPlacementModel | None) -> list[str] | SelectorPlacementModel | None:
        if isinstance(v, list):
            if not v:
                raise ValueError("must name at least one host (or omit placement to use every host)")
            if len(set(v)) != len(v):
                raise ValueError("host names must not repeat")
        return v

    @model_validator(mode="after")
    def _ratios(self) -> "FunctionModel":
        if self.gpu_config is not None:  # FC's card table sets cpu and memory; the CPU rules below do not apply
            try:
                gpus.validate({"runtime": self.runtime, "cpu": self.cpu, "memory_size": self.memory_size,
                               "gpu_config": self.gpu_config.model_dump()})
            except gpus.GpuConfigError as exc:
                raise ValueError(str(exc)) from None
        elif self.memory_size > 32768:
            raise ValueError(f"memory_size must be less than or equal to 32768 MB without gpu_config; got {self.memory_size}")
        elif self.cpu is not None and self.cpu > 16:
            raise ValueError(f"cpu must be less than or equal to 16 vCPU without gpu_config; got {self.cpu:g}")
        if self.cpu is not None and self.gpu_config is None:
            gb = self.memory_size / 1024
            if not (self.cpu <= gb <= self.cpu * 4):
                raise ValueError(f"cpu : memory_size (GB) must be between 1:1 and 1:4; got {self.cpu} : {gb:g}")
        container = self.runtime == "custom-container"
        if self.runtime in ("custom", "custom.debian12") and self.custom_runtime_config is None:
            raise ValueError("custom_runtime_config (command, args, port) is required for a custom runtime")
        if container and self.custom_container_config is None:
            raise ValueError("custom_container_config (image, port) is required for runtime custom-container")
        if container and self.layers:
            raise ValueError("layers are not for runtime custom-container: the image brings what it needs")
        if not container and self.custom_container_config is not None:
            raise ValueError("custom_container_config is only for runtime custom-container")
        if container and self.custom_runtime_config is not None:
            raise ValueError("custom_runtime_config is not for runtime custom-container; use custom_container_config")
        if self.code_error is not None:
            raise ValueError(f"code: {self.code_error}")
        if not container and self.code_checksum is None:
            raise ValueError(f"code is required for runtime {self.runtime} (only custom-container runs without it)")
        if self.instance_concurrency != 1 and self.runtime in runtimes.BUILTIN:
            raise ValueError("instance_concurrency must be 1 for built-in runtimes")
        if self.hibernation and self.min_instances < 1:
            raise ValueError("hibernation needs min_instances of 1 or more (only kept instances hibernate)")
        if self.min_instances > self.max_instances:
            raise ValueError("min_instances must not exceed max_instances")
        return self


def has_unknown(value: Any) -> bool:
    """True when a value, or anything inside it, is not known yet (at preview): the dynamic provider's marker
    string, or an output value (the SDK's Unknown object) that an Output nested in a list or dict arrives as, e.g.
    a LayerVersion's ARN in ``layers``."""
    if isinstance(value, (pulumi.Output, pulumi.output.Unknown)) or (isinstance(value, str) and value == UNKNOWN):
        return True
    if isinstance(value, dict):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(has_unknown(v) for v in value)
    return False


def _model_level_property(model: type[BaseModel], message: str) -> str:
    """A rule across fields names its main property first ("cpu : memory_size ...", "code is required ...")."""
    first = re.split(r"[\s:(]", message, maxsplit=1)[0].split(".")[0]  # "gpu_config.gpu_type ..." names gpu_config
    return first if first in model.model_fields or first == "code" else "(resource)"


def check(model: type[BaseModel], inputs: dict[str, Any]) -> list[tuple[str, str]]:
    """Returns (property, reason) pairs. Properties whose values are unknown (preview) are left for later, and so
    are rules across properties while any value is unknown: `pulumi up` checks again once all are known."""
    inputs = {k: v for k, v in inputs.items() if k in model.model_fields}  # e.g. the fleet's connection is not
    known = {k: v for k, v in inputs.items() if not has_unknown(v) and v is not None}
    unknown = {k for k, v in inputs.items() if has_unknown(v)}
    try:
        model.model_validate(known)
    except ValidationError as exc:
        failures = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:
                if unknown:
                    continue
                failures.append((_model_level_property(model, msg), msg))
                continue
            prop = str(err["loc"][0])
            if prop in unknown:
                continue
            where = ".".join(str(p) for p in err["loc"])
            failures.append((prop, f"{where}: {msg}"))
        return failures
    return []
