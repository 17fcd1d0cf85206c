"""Typed nested inputs, the way Pulumi's generated SDKs offer them (pulumi-alicloud's
``V3FunctionCustomRuntimeConfigArgs`` and friends): each nested configuration is an ``...Args`` class with completion,
type hints, a docstring and a default for every field. Wherever one is accepted, the plain dict that works today
is accepted too, and both reach the provider as the same dict, so switching between them changes nothing.

Values inside may be Pulumi inputs (``pulumi.Output``); they are resolved by the engine like any other input. The
rules (ranges, patterns) are checked at preview by the provider's validation, with the property named, exactly as
for dicts."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Sequence, TypeVar, Union

import pulumi


@dataclasses.dataclass(kw_only=True)
class InputArgs:
    """Base of the typed nested inputs: ``to_input()`` gives the dict the provider receives."""

    def to_input(self) -> dict[str, Any]:
        """Fields left at None are omitted (the provider applies its default); nested Args become dicts."""
        return {f.name: to_input(getattr(self, f.name)) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}


def to_input(value: Any) -> Any:
    """A nested input as the provider receives it: Args classes become dicts, recursively through lists and dicts;
    everything else (plain values, Outputs) is kept."""
    if isinstance(value, InputArgs):
        return value.to_input()
    if isinstance(value, Mapping):
        return {k: to_input(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_input(v) for v in value]
    return value


A = TypeVar("A", bound=InputArgs)


def nested(argument: str, value: Union[None, A, Mapping[str, Any], pulumi.Output], expected: type[A], *,
           empty_is_unset: bool = True) -> Any:
    """``value`` of the nested ``argument`` as the provider receives it. An Args class of another kind is a
    mistake the dict form cannot make (its fields would be dropped silently), so it fails here, naming both."""
    if value is None or isinstance(value, pulumi.Output):
        return value
    if empty_is_unset and isinstance(value, Mapping) and not value:
        return None  # for a function's configs an empty dict has always meant "not set"
    if isinstance(value, InputArgs) and not isinstance(value, expected):
        raise TypeError(f"{argument} takes {expected.__name__} (or a dict), not {type(value).__name__}")
    if not isinstance(value, (InputArgs, Mapping)):
        raise TypeError(f"{argument} takes {expected.__name__} or a dict, not {type(value).__name__}")
    return to_input(value)


@dataclasses.dataclass(kw_only=True)
class HealthCheckConfigArgs(InputArgs):
    """FC's ``healthCheckConfig`` of a custom runtime or custom container: an HTTP GET on the instance's port at a
    period; ``failure_threshold`` failures in a row mark the instance unhealthy and it is replaced.

    :param http_get_url: The path checked, starting with "/". Default "/".
    :param initial_delay_seconds: Seconds after the start before the first check, 0-120. Default 0.
    :param period_seconds: Seconds between checks, 1-120. Default 3.
    :param timeout_seconds: Seconds one check may take, 1-3. Default 1.
    :param failure_threshold: Failures in a row that mark the instance unhealthy, 1-120. Default 3.
    :param success_threshold: Successes in a row that mark it healthy again, 1-120. Default 1.
    """

    http_get_url: pulumi.Input[str] = "/"
    initial_delay_seconds: pulumi.Input[int] = 0
    period_seconds: pulumi.Input[int] = 3
    timeout_seconds: pulumi.Input[int] = 1
    failure_threshold: pulumi.Input[int] = 3
    success_threshold: pulumi.Input[int] = 1


@dataclasses.dataclass(kw_only=True)
class CustomRuntimeConfigArgs(InputArgs):
    """FC's ``customRuntimeConfig`` for runtimes ``custom`` and ``custom.debian12``: your own HTTP server, started
    in the code folder, listening on ``port`` (also given in FC_SERVER_PORT) and answering ``POST /invoke``.

    :param command: The command that starts the server, e.g. ["python3", "-u", "server.py"]. Required.
    :param args: Arguments appended to the command. Default none.
    :param port: The port the server listens on, 1-65535. Default 9000.
    :param health_check_config: Health checks of each instance. Default none (an instance is ready when its port
           answers).
    """

    command: Sequence[pulumi.Input[str]]
    args: Optional[Sequence[pulumi.Input[str]]] = None
    port: pulumi.Input[int] = 9000
    health_check_config: Optional[HealthCheckConfigArgs] = None


@dataclasses.dataclass(kw_only=True)
class CustomContainerConfigArgs(InputArgs):
    """FC's ``customContainerConfig`` for runtime ``custom-container``: your own image, run hardened, with no code
    mounted.

    :param image: The image reference, "registry/name:tag" or with "@sha256:..."; it must be present on each host
           (or pullable there). Required.
    :param port: The port the image's server listens on, 1-65535. Default 9000.
    :param command: Replaces the image's CMD. Default: the image's.
    :param entrypoint: Replaces the image's ENTRYPOINT. Default: the image's.
    :param health_check_config: Health checks of each instance. Default none.
    """

    image: pulumi.Input[str]
    port: pulumi.Input[int] = 9000
    command: Optional[Sequence[pulumi.Input[str]]] = None
    entrypoint: Optional[Sequence[pulumi.Input[str]]] = None
    health_check_config: Optional[HealthCheckConfigArgs] = None


@dataclasses.dataclass(kw_only=True)
class LifecycleHookArgs(InputArgs):
    """One of FC's instance lifecycle hooks.

    :param handler: "module.function" in the function's code. Required.
    :param timeout: Seconds the hook may run: up to 600 for the initializer, 900 for pre_stop. Default 3.
    """

    handler: pulumi.Input[str]
    timeout: pulumi.Input[int] = 3


@dataclasses.dataclass(kw_only=True)
class InstanceLifecycleConfigArgs(InputArgs):
    """FC's ``instanceLifecycleConfig``.

    :param initializer: Runs once per instance before its first invocation; a failure fails that invocation and
           discards the instance. Default none.
    :param pre_stop: Runs before an instance is destroyed. Default none.
    """

    initializer: Optional[LifecycleHookArgs] = None
    pre_stop: Optional[LifecycleHookArgs] = None


@dataclasses.dataclass(kw_only=True)
class DnsOptionArgs(InputArgs):
    """One resolv.conf option.

    :param name: The option's name, e.g. "ndots". Required.
    :param value: Its value, e.g. "2"; empty for options without one. Default "".
    """

    name: pulumi.Input[str]
    value: pulumi.Input[str] = ""


@dataclasses.dataclass(kw_only=True)
class CustomDnsArgs(InputArgs):
    """FC's ``customDNS``, written to each container's resolv.conf.

    :param name_servers: Up to 3 IP addresses. Default none.
    :param searches: Up to 6 search domains. Default none.
    :param dns_options: Up to 10 options. Default none.
    """

    name_servers: Sequence[pulumi.Input[str]] = dataclasses.field(default_factory=list)
    searches: Sequence[pulumi.Input[str]] = dataclasses.field(default_factory=list)
    dns_options: Sequence[DnsOptionArgs] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(kw_only=True)
class LogConfigArgs(InputArgs):
    """FC's ``logConfig``: each invocation's log lines are appended on the host to
    /var/lib/fc-agent/logs/{project}/{logstore}.jsonl.

    :param project: 3-63 lowercase letters, digits and '-'. Required.
    :param logstore: 2-63 lowercase letters, digits, '_' and '-'. Required.
    :param enable_request_metrics: Also log each request's metrics. Default False.
    :param enable_instance_metrics: Also log each instance's metrics. Default False.
    :param log_begin_rule: "None" or "DefaultRegex" (a line starting with a date starts a new entry). Default "None".
    """

    project: pulumi.Input[str]
    logstore: pulumi.Input[str]
    enable_request_metrics: pulumi.Input[bool] = False
    enable_instance_metrics: pulumi.Input[bool] = False
    log_begin_rule: pulumi.Input[str] = "None"


@dataclasses.dataclass(kw_only=True)
class PlacementArgs(InputArgs):
    """Where a function runs: named hosts, or ``replicas`` hosts whose labels match ``selector``, picked by free
    capacity. Exactly one of ``hosts`` and ``selector``. Placement is stable: hosts that run the function keep it
    while they qualify.

    :param hosts: The names of the hosts. Default none.
    :param selector: Labels a host must carry, e.g. {"zone": "b"}. Default none.
    :param replicas: With ``selector``: how many matching hosts, 1-1000. Default 1.
    """

    hosts: Optional[Sequence[str]] = None
    selector: Optional[Mapping[str, str]] = None
    replicas: int = 1

    def __post_init__(self) -> None:
        if (self.hosts is None) == (self.selector is None):
            raise TypeError("PlacementArgs takes exactly one of hosts and selector")

    def to_input(self) -> Any:  # the two shapes placement has always had: a list, or a selector dict
        if self.hosts is not None:
            return list(self.hosts)
        return {"selector": dict(self.selector or {}), "replicas": self.replicas}


def placement_input(value: Union[None, PlacementArgs, Sequence[str], Mapping[str, Any]]) -> Any:
    """``placement`` as the provider receives it: a list of host names or a selector dict."""
    if value is None or isinstance(value, pulumi.Output):
        return value
    if isinstance(value, PlacementArgs):
        return value.to_input()
    if isinstance(value, InputArgs) or isinstance(value, (str, bytes)):
        raise TypeError(f"placement takes PlacementArgs, a list of host names or a dict, not {type(value).__name__}")
    return to_input(dict(value)) if isinstance(value, Mapping) else list(value)


@dataclasses.dataclass(kw_only=True)
class HostCapacityArgs(InputArgs):
    """What functions may reserve on a host. The agent starts no instance past it, and placement counts it.

    :param cpu: vCPUs, more than 0. Required.
    :param memory_mb: MB, at least 128. Required.
    """

    cpu: float
    memory_mb: int


@dataclasses.dataclass(kw_only=True)
class InvokePortGuardsArgs(InputArgs):
    """How each host's invoke port treats its clients (the port every function call, HTTP trigger and front door
    reaches). A connection is one thread in the agent, so ``max_connections`` bounds the threads too.

    :param head_timeout_seconds: A client must send a request's head within this many seconds once it began (and
           a new connection its first head), so a slow client cannot hold a thread; 1-300. Default 10.
    :param keepalive_timeout_seconds: A kept-alive connection may idle this long between requests before the agent
           closes it; 1-3600. Default 60.
    :param max_connections: Client connections open at once per host; past it, a new connection is answered 503
           (TooManyConnections) and closed while the open ones keep being served; 16-65536. Default 1024.
    """

    head_timeout_seconds: pulumi.Input[float] = 10.0
    keepalive_timeout_seconds: pulumi.Input[float] = 60.0
    max_connections: pulumi.Input[int] = 1024


@dataclasses.dataclass(kw_only=True)
class StemCellsArgs(InputArgs):
    """Stem cells on every host of the fleet: started, frozen, code-less runtime containers that cold starts of
    built-in-runtime functions take instead of starting a container (docs/architecture.md, "Stem cells").

    :param enabled: Keep stem cells. Default True. An instance born a cell is named ``fc-<instance id>`` as any
           instance's container is, but keeps the cell's labels (``fc.cell``, not ``fc.function`` / ``fc.instance``):
           find a function's containers by name or with ``fc instances`` (docs/architecture.md).
    :param min_per_runtime: Idle cells kept per built-in runtime a deployed function uses. Default 1.
    :param max_per_runtime: At most this many idle cells per runtime, whatever the demand. Default 4 (at most 64).
    :param window_seconds: Demand is the cold starts of the last this many seconds. Default 300.
    :param runtimes: Only these built-in runtimes get cells. Default: every built-in runtime a function uses.
    :param memory_mb: A cell's memory limit and reservation until a function takes it. Default 128 (at least 64).
    """

    enabled: Optional[bool] = None
    min_per_runtime: Optional[int] = None
    max_per_runtime: Optional[int] = None
    window_seconds: Optional[float] = None
    runtimes: Optional[Sequence[str]] = None
    memory_mb: Optional[int] = None


@dataclasses.dataclass(kw_only=True)
class NatsTaskQueueArgs(InputArgs):
    """The fleet's asynchronous tasks on a NATS JetStream cluster instead of each host's own SQLite queue: any host
    accepts, any host with the function runs, and no task is lost or stranded when one whole host is (replicas 3,
    every write fsynced before its ack). The Fleet installs nats-server v2.15.2 (the project's build, shipped) on
    ``hosts`` and keeps it running next to the agent (docs/architecture.md, "A fleet-wide queue").

    :param hosts: The names of the 3 (or 5) fleet hosts that run the cluster's members. Required.
    :param ack_wait_seconds: A claimed task's lease: a host that stops answering for this long (gone, cut off)
           loses its tasks to the other hosts. Default 30 (3-600).
    """

    hosts: Sequence[str]
    ack_wait_seconds: Optional[float] = None

    def to_input(self) -> dict[str, Any]:
        return {"nats": {"hosts": list(self.hosts), **({"ack_wait_seconds": self.ack_wait_seconds}
                                                       if self.ack_wait_seconds is not None else {})}}


@dataclasses.dataclass(kw_only=True)
class DestinationArgs(InputArgs):
    """Where an asynchronous invocation's outcome goes (FC's ``Destination``).

    :param destination: A function of this fleet by its ARN, ``acs:fc:local:fleet:functions/NAME`` (the event
           becomes an asynchronous invocation of it), or an ``http(s)://`` URL that receives the event by POST (a
           webhook; FC has no such destination). Required.
    """

    destination: Any


@dataclasses.dataclass(kw_only=True)
class DestinationConfigArgs(InputArgs):
    """FC's ``destinationConfig``: where the destination event goes after an asynchronous invocation ends.

    :param on_success: For events that succeeded. Default none (nothing is sent).
    :param on_failure: For events that failed after their retries, expired or became invalid. Default none.
    """

    on_success: Optional[Union[DestinationArgs, Mapping[str, Any]]] = None
    on_failure: Optional[Union[DestinationArgs, Mapping[str, Any]]] = None


@dataclasses.dataclass(kw_only=True)
class GpuConfigArgs(InputArgs):
    """FC's ``gpuConfig`` (runtime custom-container only): whole cards of one type per instance, or one MIG device
    (cards with MIG only). Docker cannot cap the GPU memory a container uses, so any other part of a card is
    refused rather than promised.

    :param gpu_type: A card type of the catalog (fc_common/gpu.py): "fc.gpu.tesla.1", "fc.gpu.ampere.1",
           "fc.gpu.ada.1", "fc.gpu.ada.2", "fc.gpu.ada.3", "fc.gpu.hopper.1", "fc.gpu.xpu.1". Required.
    :param gpu_memory_size: MB: the memory of one or more whole cards of that type (e.g. 49152 for one
           fc.gpu.ada.1). The function's cpu and memory_size must be among FC's choices for those cards. Or, for a
           card type with MIG (fc.gpu.hopper.1), one MIG profile's memory (e.g. 49152 for 3g.48gb): one MIG device
           of that size, which a host must report; cpu and memory_size then up to one card's largest. Required.
    """

    gpu_type: pulumi.Input[str]
    gpu_memory_size: pulumi.Input[int]


@dataclasses.dataclass(kw_only=True)
class SimulatedGpuArgs(InputArgs):
    """Simulated cards on a lab host: no hardware behind them, named SIMULATED everywhere (UUIDs SIM-GPU-...).

    :param type: The card type they stand for, e.g. "fc.gpu.tesla.1". Required.
    :param count: How many, 1-64. Default 1.
    :param mig_profiles: The MIG layout each of these cards is split into, e.g. ["3g.48gb", "3g.48gb"] (only card
        types with MIG: fc.gpu.hopper.1); its MIG devices are leased, the card never whole. Default none (no MIG).
    """

    type: str
    count: int = 1
    mig_profiles: Optional[Sequence[str]] = None


@dataclasses.dataclass(kw_only=True)
class HostGpusArgs(InputArgs):
    """A host's GPUs: real cards (``type``, found by NVML or nvidia-smi) or simulated ones (``simulated``), never
    both. An NVML failure on a host with real cards is an error reported by the agent, never a fallback.

    :param type: The fc.gpu.* type of the host's real cards. Default none.
    :param source: How real cards are found: "nvml" (nvidia-ml-py) or "nvidia-smi". Default "nvml".
    :param simulated: Declared simulated cards, for labs without a GPU. Default none.
    """

    type: Optional[str] = None
    source: Optional[str] = None
    simulated: Optional[Sequence[SimulatedGpuArgs]] = None
