"""The ``Function`` resource: one function's code and configuration, placed on the fleet's hosts."""

from __future__ import annotations

import os
import time
from typing import Any, Mapping, Optional, Sequence

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from . import _commands as cmd
from . import _fleetops as ops
from ._archive import pack_code
from ._errors import AgentAPIError, FcProviderError, HostUnreachable
from ._ssh import HostSpec
from ._validation import FunctionModel, check
from .fleet import Fleet

# Sent to the agent as the function's spec; everything else is the provider's business.
SPEC_KEYS = ("description", "runtime", "handler", "memory_size", "cpu", "timeout", "disk_size",
             "instance_concurrency", "max_instances", "min_instances", "hibernation", "instance_lifecycle_config",
             "custom_runtime_config", "environment_variables")
_OUTPUT_ONLY = {"__provider", "function_arn", "function_id", "hosts", "invoke_endpoints", "created_time",
                "last_modified_time", "state", "code_size"}
_NOT_DIFFED = _OUTPUT_ONLY | {"code_path"}  # where the code sits does not matter; its checksum does
_REPLACE_ON = ("function_name",)


class FunctionArgs:
    def __init__(
        self, *, code: pulumi.Input[str] | pulumi.Archive, function_name: Optional[str] = None,
        runtime: str = "python3.11", handler: str = "index.handler", description: str = "",
        memory_size: int = 128, cpu: Optional[float] = None, timeout: int = 3, disk_size: int = 512,
        instance_concurrency: int = 1, max_instances: int = 10, min_instances: int = 0, hibernation: bool = False,
        environment_variables: Optional[Mapping[str, pulumi.Input[str]]] = None,
        instance_lifecycle_config: Optional[Mapping[str, Mapping[str, Any]]] = None,
        custom_runtime_config: Optional[Mapping[str, Any]] = None,
        placement: Optional[Sequence[str]] = None,
    ) -> None:
        """
        :param code: A folder, a zip or tar archive, or a ``pulumi.FileArchive``. Its sha256 drives the diff.
        :param function_name: 1-64 letters, digits, '_' or '-', starting with a letter or '_'. Changing it replaces
               the function. Default: the resource name.
        :param runtime: python3.10, python3.11, python3.12 (built-in: handler(event, context)), or custom /
               custom.debian12 (your own HTTP server, see custom_runtime_config). Default "python3.11".
        :param handler: "module.function", called as handler(event, context). Default "index.handler".
        :param description: Free text, up to 256 characters. Default "".
        :param memory_size: MB, 128-32768, a multiple of 64; the container's hard memory limit. Default 128.
        :param cpu: vCPUs, 0.05-16 in steps of 0.05, with cpu : memory (GB) between 1:1 and 1:4. Default: half a
               vCPU per GB of memory.
        :param timeout: Seconds, 1-86400; a longer invocation fails with a timeout and its instance is recycled.
               Default 3.
        :param disk_size: MB of writable /tmp, 512 or 10240. Default 512.
        :param instance_concurrency: Requests one instance serves at once, 1-200; exactly 1 for built-in runtimes.
               Default 1.
        :param max_instances: Hard limit of instances per host. Default 10.
        :param min_instances: Instances kept ready (no cold start). Default 0: scale to zero.
        :param hibernation: Light hibernation: an idle kept instance is frozen (cgroup freezer) after a short grace
               and thawed by the next request in milliseconds. Needs min_instances >= 1. Default False.
        :param environment_variables: Keys start with a letter, FC_ is reserved, 4 KB in total. Values may be
               secrets: the outputs holding them are always stored encrypted. Default none.
        :param instance_lifecycle_config: FC's lifecycle hooks, e.g. {"initializer": {"handler": "index.init",
               "timeout": 10}, "pre_stop": {"handler": "index.bye", "timeout": 5}}. The initializer runs once per
               instance before its first invocation (timeout up to 600 s; a failure fails that invocation and
               discards the instance); pre_stop runs before an instance is destroyed (up to 900 s). Default none.
        :param custom_runtime_config: For custom runtimes: {"command": [...], "args": [...], "port": 9000}. The
               server starts in the code folder, listens on ``port`` (also in FC_SERVER_PORT) and answers
               POST /invoke; a 5xx answer is reported as a function error. Default none.
        :param placement: Names of the hosts to run on. Default: every host of the fleet.
        """
        self.code = code
        self.function_name, self.runtime, self.handler, self.description = function_name, runtime, handler, description
        self.memory_size, self.cpu, self.timeout, self.disk_size = memory_size, cpu, timeout, disk_size
        self.instance_concurrency, self.max_instances, self.min_instances = (instance_concurrency, max_instances,
                                                                             min_instances)
        self.hibernation = hibernation
        self.custom_runtime_config = dict(custom_runtime_config) if custom_runtime_config else None
        self.instance_lifecycle_config = dict(instance_lifecycle_config) if instance_lifecycle_config else None
        self.environment_variables = dict(environment_variables or {})
        self.placement = list(placement) if placement is not None else None


def _code_source(code: Any) -> str:
    if isinstance(code, pulumi.FileArchive):
        return os.path.abspath(code.path)
    if isinstance(code, pulumi.Archive):
        raise TypeError("code: only folders, archive files and pulumi.FileArchive are supported")
    return os.path.abspath(str(code))


def _placed_hosts(conn: ops.FleetConnection, placement: Optional[list[str]]) -> list[HostSpec]:
    if placement is None:
        return list(conn.hosts)
    return [conn.host(name) for name in placement]


def _spec(props: dict[str, Any]) -> dict[str, Any]:
    """The agent's view of the function, normalized by the model (Pulumi hands numbers over as floats)."""
    model = FunctionModel.model_validate({k: v for k, v in props.items() if v is not None})
    return {k: v for k, v in model.model_dump().items() if k in SPEC_KEYS and v is not None}


class FunctionProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = [CheckFailure(p, r) for p, r in check(FunctionModel, news)]
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in news if k not in _NOT_DIFFED and olds.get(k) != news.get(k)]
        connection = news.get("connection")
        if isinstance(connection, dict) and isinstance(connection.get("hosts"), list):
            planned = news.get("placement") or [h["name"] for h in connection["hosts"]]
            if sorted(planned) != sorted(olds.get("hosts") or []):
                changed.append("hosts")  # refresh found the function missing somewhere, or placement moved
        replaces = [k for k in _REPLACE_ON if k in changed]
        return DiffResult(changes=bool(changed), replaces=replaces, stables=[], delete_before_replace=bool(replaces))

    def _deploy(self, props: dict[str, Any], created_time: Optional[str] = None) -> dict[str, Any]:
        conn = ops.FleetConnection.from_dict(props["connection"])
        package = pack_code(props["code_path"])
        if package.checksum != props["code_checksum"]:
            raise FcProviderError(f"code at {props['code_path']} changed during the deployment "
                                  f"(planned {props['code_checksum'][:12]}, found {package.checksum[:12]}); run again")
        name = props["function_name"]
        spec = {**_spec(props), "code_checksum": package.checksum}

        def deploy(host: HostSpec) -> dict[str, Any]:
            with ops.agent_session(conn, host) as (ssh, agent):
                archive = cmd.code_archive(package.checksum)
                if ssh.run(cmd.path_exists(archive), check=False).exit_status != 0:
                    ssh.put_bytes(package.data, archive)  # content-addressed: skipped when already there
                return agent.put_function(name, spec)

        hosts = _placed_hosts(conn, props.get("placement"))
        with ops.fleet_lock(conn, hosts, f"deploy of function {name}"):
            records = ops.on_hosts(f"deploy of function {name}", hosts, deploy)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return {
            **props,
            "function_id": name,
            "function_arn": f"acs:fc:local:fleet:functions/{name}",
            "code_size": package.size,
            "hosts": sorted(records),
            "invoke_endpoints": [f"http://{h.address}:{conn.invoke_port}/2023-03-30/functions/{name}/invocations"
                                 for h in hosts],
            "created_time": created_time or now,
            "last_modified_time": now,
            "state": "Active",
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._deploy(props)
        return CreateResult(id_=props["function_name"], outs=outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        outs = self._deploy(news, olds.get("created_time"))
        gone = sorted(set(olds.get("hosts") or []) - set(outs["hosts"]))
        if gone:
            self._remove(olds, gone)
        return UpdateResult(outs=outs)

    def _remove(self, props: dict[str, Any], host_names: list[str]) -> None:
        conn = ops.FleetConnection.from_dict(props["connection"])
        name = props["function_name"]

        def remove(host: HostSpec) -> bool:
            with ops.agent_session(conn, host) as (_ssh, agent):
                return agent.delete_function(name)

        hosts = [conn.host(n) for n in host_names]
        with ops.fleet_lock(conn, hosts, f"removal of function {name}"):
            ops.on_hosts(f"removal of function {name}", hosts, remove)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        self._remove(props, list(props.get("hosts") or []))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        conn = ops.FleetConnection.from_dict(props["connection"])
        name = props.get("function_name", id_)

        def fetch(host: HostSpec) -> Optional[dict[str, Any]]:
            try:
                with ops.agent_session(conn, host) as (_ssh, agent):
                    return agent.get_function(name)
            except (HostUnreachable, AgentAPIError):
                return None  # an agent that does not answer serves nothing: drift, which the next up repairs

        records = ops.on_hosts(f"read of function {name}", _placed_hosts(conn, props.get("placement")), fetch)
        present = {h: r for h, r in records.items() if r is not None}
        if not present:
            return ReadResult(None, {})
        outs = dict(props)
        outs["hosts"] = sorted(present)
        # A host whose copy differs makes the refreshed outputs differ from the inputs, so the next up repairs it.
        for key in SPEC_KEYS + ("code_checksum",):
            values = {repr(r.get(key)) for r in present.values()}
            if len(values) > 1:
                outs[key] = f"<drift: hosts disagree on {key}>"
            elif key in next(iter(present.values())):
                outs[key] = next(iter(present.values()))[key]
        return ReadResult(id_, outs)


class Function(pulumi.dynamic.Resource):
    """A function on the fleet: its code is uploaded content-addressed to every placed host, and the host's agent
    runs it in containers on demand. Invoke it at any ``invoke_endpoints`` URL (FC's InvokeFunction shape)."""

    function_name: pulumi.Output[str]
    function_arn: pulumi.Output[str]
    code_checksum: pulumi.Output[str]
    code_size: pulumi.Output[int]
    hosts: pulumi.Output[list]
    invoke_endpoints: pulumi.Output[list]
    created_time: pulumi.Output[str]
    last_modified_time: pulumi.Output[str]
    state: pulumi.Output[str]

    def __init__(self, resource_name: str, args: FunctionArgs, *, fleet: Fleet,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        source = pulumi.Output.from_input(args.code).apply(_code_source)
        package = source.apply(pack_code)
        props: dict[str, Any] = {
            "connection": fleet.connection,
            "function_name": args.function_name or resource_name,
            "code_path": source,
            "code_checksum": package.apply(lambda p: p.checksum),
            "runtime": args.runtime, "handler": args.handler, "description": args.description,
            "memory_size": args.memory_size, "cpu": args.cpu, "timeout": args.timeout, "disk_size": args.disk_size,
            "instance_concurrency": args.instance_concurrency, "max_instances": args.max_instances,
            "min_instances": args.min_instances, "hibernation": args.hibernation,
            "instance_lifecycle_config": args.instance_lifecycle_config,
            "custom_runtime_config": args.custom_runtime_config,
            # Values may be secrets; the whole map is stored encrypted, inputs and outputs alike.
            "environment_variables": pulumi.Output.secret(args.environment_variables),
            "placement": args.placement,
            **{k: None for k in _OUTPUT_ONLY - {"__provider"}},
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["connection", "environment_variables"], depends_on=[fleet]))
        super().__init__(FunctionProvider(), resource_name, props, opts)
