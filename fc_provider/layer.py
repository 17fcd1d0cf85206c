"""The ``LayerVersion`` resource: a package of files for ``/opt`` (libraries, binaries) that functions list in their
``layers``, uploaded content-addressed once to every host of the fleet and shared by every function there."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, ResourceProvider

from fc_common.arns import LAYER_ARN

from ._errors import FcProviderError, brief_errors
from ._model.code import pack, summarize
from ._model.releases import LayerVersionModel
from ._model.validation import check, has_unknown
from ._remote import commands as cmd
from ._remote import fleetops as ops
from ._remote.ssh import HostSpec
from .fleet import Fleet

# Layer versions are immutable (FC and Terraform alike): any change publishes a new version.
_REPLACE_ON = ("layer_name", "code_checksum", "compatible_runtime", "description", "license")


class LayerVersionArgs:
    def __init__(self, *, code: Optional[pulumi.Input[str] | pulumi.Archive] = None, layer_name: Optional[str] = None,
                 compatible_runtime: Optional[Sequence[str]] = None, description: str = "",
                 license: str = "") -> None:
        """
        :param code: What goes to /opt, as for a function's code: a folder, a .zip/.tar.gz, ``pulumi.FileArchive``
               or ``pulumi.AssetArchive``. FC's layout: python/ (on the Python path), bin/ (on PATH), lib/ (on
               LD_LIBRARY_PATH). An archive entry escaping its root (zip-slip) is refused at preview. Required.
        :param layer_name: 1-64 letters, digits, '_' or '-', starting with a letter or '_'. Default: the resource
               name.
        :param compatible_runtime: The runtimes that may use the layer, e.g. ["python3.11"]; a function on another
               runtime listing it is refused at preview. Default none: every runtime.
        :param description: Up to 256 characters. Default "".
        :param license: Up to 512 characters. Default "".
        """
        self.code, self.layer_name, self.description, self.license = code, layer_name, description, license
        self.compatible_runtime = list(compatible_runtime or [])


class LayerVersionProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, [CheckFailure(p, r) for p, r in check(LayerVersionModel, news)])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in _REPLACE_ON if (olds.get(k) or None) != (news.get(k) or None)]
        return DiffResult(changes=bool(changed), replaces=changed, stables=[], delete_before_replace=False)

    @brief_errors
    def create(self, props: dict[str, Any]) -> CreateResult:
        """Uploads the package to every host that lacks it, then registers it under one version number on all of
        them: the highest next number any host offers (numbers are never reused)."""
        conn = ops.FleetConnection.from_dict(props["connection"])
        hosts = list(conn.hosts)
        name = props["layer_name"]
        package = pack(props["code"])
        if package.checksum != props["code_checksum"]:
            raise FcProviderError(f"the code of layer {name} changed during the deployment (planned "
                                  f"{props['code_checksum'][:12]}, found {package.checksum[:12]}); run again")
        body = {"code_checksum": package.checksum, "code_size": package.size,
                "compatible_runtime": list(props.get("compatible_runtime") or []),
                "description": props.get("description") or "", "license": props.get("license") or ""}

        def upload(host: HostSpec) -> int:
            with ops.agent_session(conn, host) as (ssh, agent):
                archive = cmd.code_archive(package.checksum)
                if ssh.run(cmd.path_exists(archive), check=False).exit_status != 0:
                    ssh.put_bytes(package.data, archive)  # content-addressed: once per host
                return agent.next_layer_version(name)

        def register(host: HostSpec) -> dict[str, Any]:
            with ops.agent_session(conn, host) as (_ssh, agent):
                return agent.put_layer_version(name, version, body)

        with ops.fleet_lock(conn, hosts, f"publish of layer {name}"):
            version = max(ops.on_hosts(f"upload of layer {name}", hosts, upload).values())
            records = ops.on_hosts(f"publish of layer {name} version {version}", hosts, register)
        first = records[sorted(records)[0]]
        outs = {**props, "version": version, "layer_version_arn": first["layer_version_arn"],
                "code_size": package.size, "create_time": first.get("create_time")}
        return CreateResult(id_=f"{name}:{version}", outs=outs)

    @brief_errors
    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Deregisters the version everywhere. Functions and versions that use it keep it on their hosts."""
        conn = ops.FleetConnection.from_dict(props["connection"])
        name, version = props["layer_name"], int(props["version"])

        def remove(host: HostSpec) -> bool:
            with ops.agent_session(conn, host) as (_ssh, agent):
                return agent.delete_layer_version(name, version)

        with ops.fleet_lock(conn, list(conn.hosts), f"deletion of layer {name} version {version}"):
            ops.on_hosts(f"deletion of layer {name} version {version}", list(conn.hosts), remove)

    @brief_errors
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        conn = ops.FleetConnection.from_dict(props["connection"])
        name, version = props["layer_name"], int(props["version"])
        records = ops.ask_agents(conn, list(conn.hosts), f"read of layer {name}",
                                 lambda agent: agent.get_layer_version(name, version))
        if not any(records.values()):
            return ReadResult(None, {})
        return ReadResult(id_, props)


def registered_layers(connection: dict[str, Any], layers: list[str]) -> dict[str, Optional[dict[str, Any]]]:
    """Each layer ARN's record on the fleet's first host (None: not there), for checks at preview."""
    conn = ops.FleetConnection.from_dict(connection)
    found: dict[str, Optional[dict[str, Any]]] = {}
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        for arn in layers:
            m = LAYER_ARN.match(arn)
            found[arn] = agent.get_layer_version(m.group(1), int(m.group(2))) if m else None
    return found


def layers_on_fleet(news: dict[str, Any]) -> list[tuple[str, str]]:
    """Layers named by ARN alone (not as LayerVersion objects of this program) are looked up on the fleet at
    preview, once the ARNs and the fleet are known: each must exist and accept the function's runtime."""
    layers, connection, runtime = news.get("layers"), news.get("connection"), news.get("runtime")
    declared = news.get("layer_runtimes") or []
    by_arn = [arn for i, arn in enumerate(layers or []) if i >= len(declared) or declared[i] is None]
    if not by_arn or has_unknown(layers) or not isinstance(connection, dict) or has_unknown(connection):
        return []
    try:
        found = registered_layers(connection, by_arn)
    except FcProviderError as exc:
        return [("layers", f"layers: cannot look the layers up on the fleet: {exc}")]
    failures = []
    for index, arn in enumerate(layers):
        if arn not in found:
            continue
        record = found[arn]
        if record is None:
            failures.append(("layers", f"layers[{index}]: layer {arn} does not exist on this fleet"))
        elif record.get("compatible_runtime") and runtime not in record["compatible_runtime"]:
            failures.append(("layers", f"layers[{index}]: the layer is compatible with "
                                       f"{', '.join(record['compatible_runtime'])}, not {runtime}"))
    return failures


class LayerVersion(pulumi.dynamic.Resource):
    """FC's layer version: a package merged into ``/opt`` of every function that lists its ARN in ``layers`` (the
    first-listed layer wins a name clash). Immutable: any change publishes a new version.

    Outputs: ``version`` (1, 2, ... per layer name, never reused), ``layer_version_arn``
    ("acs:fc:local:fleet:layers/NAME/versions/N"), ``code_size``, ``code_checksum``, ``create_time``.
    """

    layer_name: pulumi.Output[str]
    version: pulumi.Output[int]
    layer_version_arn: pulumi.Output[str]
    code_size: pulumi.Output[int]
    code_checksum: pulumi.Output[str]
    create_time: pulumi.Output[str]

    def __init__(self, resource_name: str, args: LayerVersionArgs, *, fleet: Fleet,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        """
        :param resource_name: The Pulumi resource name; also the layer_name when args leave it unset.
        :param args: The layer's package and metadata.
        :param fleet: The fleet whose hosts get the layer (every host: any function there may list it).
        :param opts: Pulumi resource options.
        """
        code = pulumi.Output.from_input(args.code).apply(summarize)
        # Known at preview, so a function on another runtime is refused before anything is created.
        self.compatible_runtime_input = list(args.compatible_runtime)
        props = {
            "connection": fleet.connection,
            "layer_name": args.layer_name or resource_name,
            "code": code.apply(lambda c: c["code"]),
            "code_checksum": code.apply(lambda c: c["code_checksum"]),
            "code_error": code.apply(lambda c: c["code_error"]),
            "compatible_runtime": args.compatible_runtime,
            "description": args.description, "license": args.license,
            "version": None, "layer_version_arn": None, "code_size": None, "create_time": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["connection"], depends_on=[fleet]))
        super().__init__(LayerVersionProvider(), resource_name, props, opts)
