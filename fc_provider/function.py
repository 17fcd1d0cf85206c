"""The ``Function`` resource: one function's code and configuration, placed on the fleet's hosts."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from fc_common import runtimes

from ._errors import AgentAPIError, FcProviderError, HostUnreachable, brief_errors
from ._inputs import (
    CustomContainerConfigArgs,
    CustomDnsArgs,
    CustomRuntimeConfigArgs,
    GpuConfigArgs,
    InstanceLifecycleConfigArgs,
    LogConfigArgs,
    PlacementArgs,
    nested,
    placement_input,
)
from ._model import function_state as fs
from ._model.code import pack, summarize
from ._model.placement import Need, PlacementError, candidates_for, place, planned_without_capacity
from ._model.releases import layer_failures
from ._model.validation import FunctionModel, check, has_unknown
from ._remote import commands as cmd
from ._remote import fleetops as ops
from ._remote.ssh import HostSpec
from .fleet import Fleet
from .layer import LayerVersion, layers_on_fleet

Placement = Union[Sequence[str], Mapping[str, Any], PlacementArgs]
Nested = Optional[Mapping[str, Any]]  # the plain-dict form every typed nested input also accepts

# Pulumi calls a dynamic provider's read for an import with neither inputs nor state, so the provider cannot even
# be loaded (pulumi/pulumi#16175): `pulumi import` and ResourceOptions(import_=...) both fail before our code runs.
IMPORT_LIMIT = ("Pulumi cannot import a dynamic resource (pulumi/pulumi#16175); declare the Function with adopt=True "
                "to take over a function that already runs on the fleet")


class FunctionExists(FcProviderError):
    """Create found another function of the same name on a host; adopt=True takes it over."""


class FunctionArgs:
    def __init__(
        self, *, code: Optional[pulumi.Input[str] | pulumi.Archive] = None, function_name: Optional[str] = None,
        runtime: str = "python3.11", handler: str = "index.handler", description: str = "",
        memory_size: int = 128, cpu: Optional[float] = None, timeout: int = 3, disk_size: int = 512,
        instance_concurrency: int = 1, max_instances: int = 10, min_instances: int = 0, hibernation: bool = False,
        environment_variables: Optional[Mapping[str, pulumi.Input[str]]] = None,
        instance_lifecycle_config: Union[InstanceLifecycleConfigArgs, Nested] = None,
        custom_runtime_config: Union[CustomRuntimeConfigArgs, Nested] = None,
        custom_container_config: Union[CustomContainerConfigArgs, Nested] = None,
        internet_access: bool = True,
        custom_dns: Union[CustomDnsArgs, Nested] = None,
        log_config: Union[LogConfigArgs, Nested] = None,
        tags: Optional[Mapping[str, str]] = None,
        placement: Optional[Placement] = None,
        layers: Optional[Sequence[Union[pulumi.Input[str], LayerVersion]]] = None,
        gpu_config: Union[GpuConfigArgs, Nested] = None,
    ) -> None:
        """
        :param code: A folder, a .zip/.tar.gz archive file, a ``pulumi.FileArchive``, or a ``pulumi.AssetArchive``
               of ``StringAsset``/``FileAsset``/``FileArchive`` entries (packed deterministically). Its sha256 drives
               the diff; the package is uploaded content-addressed and skipped when a host already has it. Required
               except for runtime custom-container. Default none.
        :param function_name: 1-64 letters, digits, '_' or '-', starting with a letter or '_'. Changing it replaces
               the function. Default: the resource name.
        :param runtime: Built-in (handler(event, context), each on its own interpreter): python3.9 (Debian 11),
               python3.11 (Debian 12), python3.13 (Debian 13), nodejs18 (Debian 12), nodejs20 (Debian 13);
               python3.10 and python3.12 only where FleetArgs.runtime_images maps them to an image of your own (no
               Debian release ships them; refused at preview otherwise). custom / custom.debian12 (your own HTTP
               server in the code, see custom_runtime_config), or custom-container (your own image, see
               custom_container_config). Default "python3.11".
        :param handler: "module.function", called as handler(event, context). Default "index.handler".
        :param description: Free text, up to 256 characters; changing it recycles no instance. Default "".
        :param memory_size: MB, 128-32768, a multiple of 64; the container's hard memory limit. Default 128.
        :param cpu: vCPUs, 0.05-16 in steps of 0.05, with cpu : memory (GB) between 1:1 and 1:4. Default: half a
               vCPU per GB of memory.
        :param timeout: Seconds, 1-86400; a longer invocation fails with a timeout and its instance is recycled.
               Default 3.
        :param disk_size: MB of writable /tmp, 512 or 10240. Default 512.
        :param instance_concurrency: Requests one instance serves at once, 1-200; exactly 1 for built-in runtimes.
               Default 1.
        :param max_instances: Hard limit of instances per host, 1-10000. Default 10.
        :param min_instances: Instances kept ready (no cold start), at most max_instances. Default 0: scale to zero.
        :param hibernation: Light hibernation: an idle kept instance is frozen (cgroup freezer) after a short grace
               and thawed by the next request in milliseconds. Needs min_instances >= 1. Default False.
        :param environment_variables: Keys start with a letter and hold letters, digits and '_'; FC_ is reserved;
               4 KB in total. Values may be secrets: the map is always stored encrypted. Default none.
        :param instance_lifecycle_config: ``fc.InstanceLifecycleConfigArgs`` or the same as a dict: FC's lifecycle
               hooks, e.g. {"initializer": {"handler": "index.init", "timeout": 10}, "pre_stop": {"handler":
               "index.bye", "timeout": 5}}. The initializer runs once per instance before its first invocation
               (timeout up to 600 s, default 3; a failure fails that invocation and discards the instance); pre_stop
               runs before an instance is destroyed (up to 900 s, default 3). Default none.
        :param custom_runtime_config: ``fc.CustomRuntimeConfigArgs`` or the same as a dict. For custom /
               custom.debian12 (required there): {"command": [...] (required), "args": [...] (default []), "port":
               1-65535 (default 9000), "health_check_config": {...}}. The server starts in the code folder, listens
               on ``port`` (also in FC_SERVER_PORT) and answers POST /invoke. health_check_config: {"http_get_url":
               "/..." (default "/"), "initial_delay_seconds": 0-120 (default 0), "period_seconds": 1-120 (default
               3), "timeout_seconds": 1-3 (default 1), "failure_threshold" and "success_threshold": 1-120 (default 3
               and 1)}. Default none.
        :param custom_container_config: ``fc.CustomContainerConfigArgs`` or the same as a dict. For custom-container
               (required there, refused elsewhere): {"image": "registry/name:tag" (required), "port": 1-65535
               (default 9000), "command": [...] and "entrypoint": [...] (default: the image's),
               "health_check_config": {... as above}}. No code is mounted. Default none.
        :param internet_access: False: the function's containers have no outbound network (the agent still reaches
               them). Default True.
        :param custom_dns: ``fc.CustomDnsArgs`` or the same as a dict: {"name_servers": up to 3 IP addresses,
               "searches": up to 6 domains, "dns_options": up to 10 [{"name": "ndots", "value": "2"}]}, written to
               the container's resolv.conf. Default none (the host's DNS).
        :param log_config: ``fc.LogConfigArgs`` or the same as a dict: {"project": 3-63 lowercase letters, digits,
               '-', "logstore": 2-63 lowercase letters, digits, '_', '-', "enable_request_metrics": bool (default
               False), "enable_instance_metrics": bool (default False), "log_begin_rule": "None" | "DefaultRegex"
               (default "None")}: each invocation's log lines are appended on the host to
               /var/lib/fc-agent/logs/{project}/{logstore}.jsonl. Default none.
        :param tags: Up to 20 key/value pairs; keys 1-128 characters, not starting with "aliyun" or "acs:", values
               up to 128 characters, no URLs. Stored, never used for running. Default none.
        :param placement: ``fc.PlacementArgs`` or the same as a list or dict. Where the function runs: a list of
               host names, or {"selector": {label: value}, "replicas": N (default 1)} to run on N hosts whose labels
               match, picked by free capacity (hosts with "capacity" declared on the fleet, or reported by the
               agent). Stable: hosts that run the function keep it while they qualify. Default: every host of the
               fleet.
        :param layers: Up to 5 layers, as ``fc.LayerVersion`` resources or their ARNs
               ("acs:fc:local:fleet:layers/NAME/versions/N"), merged read-only into /opt; on a name clash the
               first-listed wins. On the built-in runtimes /opt/python is on the Python path, /opt/bin on PATH and
               /opt/lib on LD_LIBRARY_PATH; custom runtimes get /opt mounted and no path. A layer whose
               compatible_runtime excludes ``runtime``, or that does not exist on the fleet, fails at preview.
               Default none.
        :param gpu_config: ``fc.GpuConfigArgs`` or the same as a dict, FC's names: {"gpu_type": "fc.gpu.ada.1",
               "gpu_memory_size": 49152}. Runtime custom-container only. Whole cards only (Docker cannot cap GPU
               memory): gpu_memory_size is the memory of one or more cards (or, on fc.gpu.hopper.1, one MIG profile's
               memory: one MIG device a host reports), and cpu and memory_size must be among
               FC's choices for them (cpu is then required). Each instance leases its cards exclusively on its
               host, by UUID; placement and the agent count cards like cpu and memory. Default none.
        """
        self.code = code
        self.function_name, self.runtime, self.handler, self.description = function_name, runtime, handler, description
        self.memory_size, self.cpu, self.timeout, self.disk_size = memory_size, cpu, timeout, disk_size
        self.instance_concurrency, self.max_instances, self.min_instances = (instance_concurrency, max_instances,
                                                                             min_instances)
        self.hibernation = hibernation
        self.custom_runtime_config = nested("custom_runtime_config", custom_runtime_config,
                                            CustomRuntimeConfigArgs)
        self.custom_container_config = nested("custom_container_config", custom_container_config,
                                              CustomContainerConfigArgs)
        self.instance_lifecycle_config = nested("instance_lifecycle_config", instance_lifecycle_config,
                                                InstanceLifecycleConfigArgs)
        self.environment_variables = dict(environment_variables or {})
        self.internet_access = internet_access
        self.custom_dns = nested("custom_dns", custom_dns, CustomDnsArgs)
        self.log_config = nested("log_config", log_config, LogConfigArgs)
        self.tags = dict(tags or {})
        self.placement: Any = placement_input(placement)
        self.layers = list(layers or [])
        self.gpu_config = nested("gpu_config", gpu_config, GpuConfigArgs)


def _host_info(conn: ops.FleetConnection, names: list[str]) -> dict[str, Optional[dict[str, Any]]]:
    """GET /v1/info of each host, for capacity; a host that does not answer gives None (declared capacity)."""

    def fetch(host: HostSpec) -> Optional[dict[str, Any]]:
        try:
            with ops.agent_session(conn, host) as (_ssh, agent):
                status, info = agent.raw("GET", "/v1/info")
                return info if status == 200 and isinstance(info, dict) else None
        except FcProviderError:
            return None

    return ops.on_hosts("capacity query", [conn.host(n) for n in names], fetch)


def _refuse_foreign(host: str, name: str, spec: Mapping[str, Any], existing: Optional[Mapping[str, Any]]) -> None:
    """A create never overwrites a function it did not deploy. A copy equal to ours is our own earlier, partly
    failed create, which a re-run completes."""
    if existing is not None and any(fs.normalized(existing, k) != fs.normalized(spec, k) for k in fs.SPEC_KEYS
                                    + ("code_checksum",)):
        raise FunctionExists(f"host {host}: function {name} already exists there with another configuration "
                             "(deployed outside this stack?); declare it with adopt=True to take it over, or pick "
                             "another function_name")


def _unbuilt_runtime(news: dict[str, Any]) -> list[tuple[str, str]]:
    """python3.10 and python3.12 have no image built here (no Debian release ships them): refused unless the fleet
    maps them to an image of the user's own. Checked once the fleet's connection is known."""
    runtime, connection = news.get("runtime"), news.get("connection")
    if runtime not in runtimes.NOT_BUILT or not isinstance(connection, dict) or has_unknown(connection):
        return []
    if runtime in (connection.get("runtime_images") or {}):
        return []
    return [("runtime", f"runtime: {runtime} cannot be built here (no Debian release ships it) and the fleet maps "
                        f"it to no image; runtimes built here: {', '.join(runtimes.BUILT_HERE)}; or set "
                        f"FleetArgs(runtime_images={{{runtime!r}: 'your/image:tag'}})")]


class FunctionProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = check(FunctionModel, news)
        failures += _unbuilt_runtime(news)
        failures += [("layers", r) for r in layer_failures(news.get("layers"), news.get("runtime"),
                                                           news.get("layer_runtimes"))]
        failures += layers_on_fleet(news) if not any(p == "layers" for p, _ in failures) else []
        code_error = news.get("code_error")
        if isinstance(code_error, str) and not any(p == "code" for p, _ in failures):
            failures.insert(0, ("code", f"code: {code_error}"))  # reported even while other rules fail
        connection = news.get("connection")
        if (isinstance(connection, dict) and not has_unknown(connection) and not has_unknown(news.get("placement"))
                and not any(p == "placement" for p, _ in failures)):
            try:
                candidates_for(fs.normalized(news, "placement"), connection["hosts"])
            except PlacementError as exc:
                failures.append(("placement", str(exc)))
        return CheckResult(news, [CheckFailure(p, r) for p, r in failures])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = fs.changed_keys(olds, news)
        connection = news.get("connection")
        if isinstance(connection, dict) and not has_unknown(connection) and not has_unknown(news.get("placement")):
            current = olds.get("hosts") or []
            try:
                planned = planned_without_capacity(fs.normalized(news, "placement"), connection["hosts"], current)
            except PlacementError:
                planned = None  # the update reports it
            if planned != sorted(current):
                changed.append("hosts")  # refresh found the function missing somewhere, or the fleet changed
        replaces = [k for k in fs.REPLACE_ON if k in changed]
        return DiffResult(changes=bool(changed), replaces=replaces, stables=[], delete_before_replace=bool(replaces))

    def _deploy(self, props: dict[str, Any], current: Sequence[str] = (), *, creating: bool = False) -> dict[str, Any]:
        conn = ops.FleetConnection.from_dict(props["connection"])
        name = props["function_name"]
        spec = fs.agent_spec(props)
        package = pack(props["code"]) if props.get("code") else None
        if package is not None and package.checksum != props["code_checksum"]:
            raise FcProviderError(f"code changed during the deployment of function {name} (planned "
                                  f"{props['code_checksum'][:12]}, found {package.checksum[:12]}); run again")
        host_names = place(fs.normalized(props, "placement"), props["connection"]["hosts"], current, Need.of(spec),
                           lambda names: _host_info(conn, names))

        def deploy(host: HostSpec) -> dict[str, Any]:
            with ops.agent_session(conn, host) as (ssh, agent):
                if creating and not props.get("adopt"):
                    _refuse_foreign(host.name, name, spec, agent.get_function(name))
                if package is not None:
                    archive = cmd.code_archive(package.checksum)
                    if ssh.run(cmd.path_exists(archive), check=False).exit_status != 0:
                        ssh.put_bytes(package.data, archive)  # content-addressed: skipped when already there
                return agent.put_function(name, spec)

        hosts = [conn.host(n) for n in host_names]
        with ops.fleet_lock(conn, hosts, f"deploy of function {name}"):
            records = ops.on_hosts(f"deploy of function {name}", hosts, deploy)
        outs = fs.observed(props, records)
        return {**outs, **self._identity(props, records), "code_size": package.size if package else 0}

    @staticmethod
    def _identity(props: dict[str, Any], records: Mapping[str, Any]) -> dict[str, Any]:
        conn = props["connection"]
        name = props["function_name"]
        by_name = {h["name"]: h for h in conn["hosts"]}
        return {"function_id": fs.function_id(name), "function_arn": fs.function_arn(name),
                "invoke_endpoints": fs.invoke_endpoints(by_name, int(conn.get("invoke_port", 9000)), name,
                                                        sorted(records))}

    @brief_errors
    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._deploy(props, creating=True)
        return CreateResult(id_=props["function_name"], outs=outs)

    @brief_errors
    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        outs = self._deploy(news, olds.get("hosts") or [])
        gone = sorted(set(olds.get("hosts") or []) - set(outs["hosts"]))
        if gone:
            in_fleet = {h["name"] for h in news["connection"]["hosts"]}
            self._remove(olds, gone, departed={n for n in gone if n not in in_fleet})
        return UpdateResult(outs=outs)

    def _remove(self, props: dict[str, Any], host_names: list[str], departed: frozenset[str] | set[str] = frozenset()
                ) -> None:
        """``departed``: hosts that left the fleet. The Fleet may have uninstalled their agent already, which
        removed the function with it, so an agent that no longer answers there counts as done."""
        conn = ops.FleetConnection.from_dict(props["connection"])
        name = props["function_name"]

        def remove(host: HostSpec) -> bool:
            try:
                with ops.agent_session(conn, host) as (_ssh, agent):
                    return agent.delete_function(name)
            except (HostUnreachable, AgentAPIError):
                if host.name in departed:
                    return False
                raise

        hosts = [conn.host(n) for n in host_names]
        with ops.fleet_lock(conn, hosts, f"removal of function {name}"):
            ops.on_hosts(f"removal of function {name}", hosts, remove)

    @brief_errors
    def delete(self, _id: str, props: dict[str, Any]) -> None:
        self._remove(props, list(props.get("hosts") or []))

    @brief_errors
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh and import: the function as every placed host reports it (every fleet host on import)."""
        if not isinstance(props.get("connection"), dict):
            raise FcProviderError(IMPORT_LIMIT)
        conn = ops.FleetConnection.from_dict(props["connection"])
        name = props.get("function_name") or id_
        recorded = props.get("hosts") or [h.name for h in conn.hosts]
        records = ops.ask_agents(conn, [conn.host(n) for n in recorded], f"read of function {name}",
                                 lambda agent: agent.get_function(name))
        present = {h: r for h, r in records.items() if r is not None}
        if not present:
            return ReadResult(None, {})
        props = {**props, "function_name": name}
        outs = {**fs.observed(props, present), **self._identity(props, present)}
        return ReadResult(id_, outs, fs.inputs_of(outs))


class Function(pulumi.dynamic.Resource):
    """A function on the fleet: its code is uploaded content-addressed to every placed host, and the host's agent
    runs it in containers on demand. Invoke it at any ``invoke_endpoints`` URL (FC's InvokeFunction shape).

    Outputs (FC's names): ``function_id``, ``function_arn`` ("acs:fc:local:fleet:functions/NAME"), ``code_size``,
    ``code_checksum``, ``hosts``, ``invoke_endpoints``, ``created_time``, ``last_modified_time``, ``state``.
    """

    function_name: pulumi.Output[str]
    function_id: pulumi.Output[str]
    function_arn: pulumi.Output[str]
    code_checksum: pulumi.Output[Optional[str]]
    code_size: pulumi.Output[int]
    hosts: pulumi.Output[list]
    invoke_endpoints: pulumi.Output[list]
    created_time: pulumi.Output[str]
    last_modified_time: pulumi.Output[str]
    state: pulumi.Output[str]

    def __init__(self, resource_name: str, args: FunctionArgs, *, fleet: Fleet, adopt: bool = False,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        """
        :param resource_name: The Pulumi resource name; also the function_name when args leave it unset.
        :param args: The function's configuration.
        :param fleet: The fleet whose hosts run the function.
        :param adopt: Take over a function of the same name that already runs on the fleet (deployed by another
               stack or by hand; Pulumi cannot import dynamic resources). Its configuration becomes the declared
               one and its created_time is kept. Without it, creating a function that exists on a host with another
               configuration fails. Has no effect after the create. Default False.
        :param opts: Pulumi resource options.
        """
        code = pulumi.Output.from_input(args.code).apply(summarize)
        props: dict[str, Any] = {
            "connection": fleet.connection,
            "function_name": args.function_name or resource_name,
            "code": code.apply(lambda c: c["code"]),
            "code_checksum": code.apply(lambda c: c["code_checksum"]),
            "code_error": code.apply(lambda c: c["code_error"]),
            "runtime": args.runtime, "handler": args.handler, "description": args.description,
            "memory_size": args.memory_size, "cpu": args.cpu, "timeout": args.timeout, "disk_size": args.disk_size,
            "instance_concurrency": args.instance_concurrency, "max_instances": args.max_instances,
            "min_instances": args.min_instances, "hibernation": args.hibernation,
            "instance_lifecycle_config": args.instance_lifecycle_config,
            "custom_runtime_config": args.custom_runtime_config,
            "custom_container_config": args.custom_container_config,
            # Values may be secrets; the whole map is stored encrypted, inputs and outputs alike.
            "environment_variables": pulumi.Output.secret(args.environment_variables),
            "internet_access": args.internet_access, "custom_dns": args.custom_dns, "log_config": args.log_config,
            "tags": args.tags,
            "placement": args.placement,
            "layers": [la.layer_version_arn if isinstance(la, LayerVersion) else la for la in args.layers],
            "layer_runtimes": [la.compatible_runtime_input if isinstance(la, LayerVersion) else None
                               for la in args.layers],
            "gpu_config": args.gpu_config,
            "adopt": adopt,
            **fs.output_defaults(),
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["connection", "environment_variables"], depends_on=[fleet]))
        super().__init__(FunctionProvider(), resource_name, props, opts)
        self.fleet = fleet  # resources that follow the function to its hosts (AsyncInvokeConfig) reach them here
