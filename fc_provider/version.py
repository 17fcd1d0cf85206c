"""The ``FunctionVersion`` resource: an immutable snapshot of a function's code, configuration and layers, published
on every host of the function under one version id."""

from __future__ import annotations

from typing import Any, Optional

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, ResourceProvider

from ._errors import AgentAPIError, FcProviderError, HostUnreachable, brief_errors
from ._model.releases import FunctionVersionModel
from ._model.validation import check
from ._remote import fleetops as ops
from ._remote.ssh import HostSpec
from .function import Function

_REPLACE_ON = ("function_name", "description")  # FC's versions are immutable: every argument replaces


class FunctionVersionArgs:
    def __init__(self, *, description: str = "") -> None:
        """
        :param description: Free text, up to 256 characters. Changing it publishes a new version (versions are
               immutable). Default "".
        """
        self.description = description


def _hosts(props: dict[str, Any]) -> tuple[ops.FleetConnection, list[HostSpec]]:
    conn = ops.FleetConnection.from_dict(props["connection"])
    return conn, [conn.host(n) for n in props.get("hosts") or []]


class FunctionVersionProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, [CheckFailure(p, r) for p, r in check(FunctionVersionModel, news)])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in _REPLACE_ON if (olds.get(k) or "") != (news.get(k) or "")]
        return DiffResult(changes=bool(changed), replaces=changed, stables=[], delete_before_replace=False)

    @brief_errors
    def create(self, props: dict[str, Any]) -> CreateResult:
        """Publishes LATEST on every host of the function under one id: the highest next id any host offers (ids
        are never reused on a host). A host that fails leaves none published: the others' are withdrawn."""
        conn, hosts = _hosts(props)
        name = props["function_name"]
        if not hosts:
            raise FcProviderError(f"function {name} runs on no host: there is nothing to publish")
        with ops.fleet_lock(conn, hosts, f"publish of a version of function {name}"):
            offered = ops.on_hosts(f"version ids of function {name}", hosts, lambda h: _next_id(conn, h, name))
            version_id = str(max(offered.values()))
            published: list[str] = []

            def publish(host: HostSpec) -> dict[str, Any]:
                with ops.agent_session(conn, host) as (_ssh, agent):
                    record = agent.publish_version(name, props.get("description") or "", version_id)
                published.append(host.name)
                return record

            try:
                records = ops.on_hosts(f"publish of version {version_id} of function {name}", hosts, publish)
                checksums = {r.get("code_checksum") for r in records.values()}
                if len(checksums) > 1:
                    raise FcProviderError(f"the hosts of function {name} run different code ({len(checksums)} "
                                          "checksums); run `pulumi up --refresh` to put them in line, then publish")
            except FcProviderError:
                _withdraw(conn, [conn.host(n) for n in published], name, version_id)
                raise
        first = records[sorted(records)[0]]
        outs = {**props, "version_id": version_id, "created_time": first.get("created_time"),
                "code_checksum": first.get("code_checksum"), "runtime": first.get("runtime"),
                "layers": first.get("layers") or []}
        return CreateResult(id_=f"{name}:{version_id}", outs=outs)

    @brief_errors
    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Refused on a host whose alias still points at the version; the error names the alias."""
        conn, hosts = _hosts(props)
        name, version_id = props["function_name"], props["version_id"]

        def remove(host: HostSpec) -> bool:
            try:
                with ops.agent_session(conn, host) as (_ssh, agent):
                    return agent.delete_version(name, version_id)
            except AgentAPIError as exc:
                if exc.code == "FunctionNotFound":
                    return False  # the function went first: its versions went with it
                raise

        with ops.fleet_lock(conn, hosts, f"deletion of version {version_id} of function {name}"):
            ops.on_hosts(f"deletion of version {version_id} of function {name}", hosts, remove)

    @brief_errors
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        conn, hosts = _hosts(props)
        name, version_id = props["function_name"], props["version_id"]

        def fetch(host: HostSpec) -> Optional[dict[str, Any]]:
            try:
                with ops.agent_session(conn, host) as (_ssh, agent):
                    return agent.get_version(name, version_id)
            except (HostUnreachable, AgentAPIError):
                return None

        present = {h: r for h, r in ops.on_hosts(f"read of version {version_id} of function {name}", hosts,
                                                 fetch).items() if r is not None}
        if not present:
            return ReadResult(None, {})
        return ReadResult(id_, {**props, "hosts": sorted(present)})


def _next_id(conn: ops.FleetConnection, host: HostSpec, name: str) -> int:
    with ops.agent_session(conn, host) as (_ssh, agent):
        return agent.next_version_id(name)


def _withdraw(conn: ops.FleetConnection, hosts: list[HostSpec], name: str, version_id: str) -> None:
    for host in hosts:
        try:
            with ops.agent_session(conn, host) as (_ssh, agent):
                agent.delete_version(name, version_id)
        except FcProviderError:
            pass  # best effort: the error that stopped the publish is the one reported


class FunctionVersion(pulumi.dynamic.Resource):
    """A published version of a function (FC's PublishFunctionVersion): an immutable snapshot of its code,
    configuration and layers, invoked with ``?qualifier=<version_id>`` or through an ``Alias``. It lives on the
    hosts the function ran on when it was published, each keeping its own instance pool for it.

    Outputs: ``version_id`` (increasing integers as strings, never reused), ``created_time``, ``code_checksum`` of
    the snapshot, ``hosts``.
    """

    version_id: pulumi.Output[str]
    function_name: pulumi.Output[str]
    created_time: pulumi.Output[str]
    code_checksum: pulumi.Output[Optional[str]]
    hosts: pulumi.Output[list]

    def __init__(self, resource_name: str, args: Optional[FunctionVersionArgs] = None, *, function: Function,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        """
        :param resource_name: The Pulumi resource name.
        :param args: The version's description. Default: no description.
        :param function: The function whose LATEST is published. The version is published after the function's
               own changes in the same `up` are in place.
        :param opts: Pulumi resource options.
        """
        args = args or FunctionVersionArgs()
        props = {
            "connection": function.connection,  # type: ignore[attr-defined] - every input is an output too
            "function_name": function.function_name,
            "hosts": function.hosts,
            "description": args.description,
            "version_id": None, "created_time": None, "code_checksum": None, "runtime": None, "layers": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["connection"], depends_on=[function]))
        super().__init__(FunctionVersionProvider(), resource_name, props, opts)
