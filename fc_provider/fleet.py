"""The ``Fleet`` resource: the hosts that run functions, and the runtime agent installed on each of them."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

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

from . import _commands as cmd
from . import _fleetops as ops
from ._errors import FcProviderError
from ._bundle import agent_version
from ._validation import FleetModel, check

_SETTINGS = ("runtime_images", "idle_timeout_seconds")
_OUTPUT_ONLY = {"__provider", "token", "connection", "agent_versions"}


class HostArgs:
    """One host of the fleet, reached over SSH."""

    def __init__(self, *, name: str, address: str, host_public_key: str, port: int = 22, user: str = "root",
                 labels: Optional[Mapping[str, str]] = None) -> None:
        """
        :param name: A unique name for the host within the fleet (shown in every error about it).
        :param address: The address SSH connects to.
        :param host_public_key: The host's SSH public key, "ssh-ed25519 AAAA...". Connections to a host that shows
               another key are refused (strict host-key checking, always on).
        :param port: The SSH port. Default 22.
        :param user: The SSH user; it must be able to run Docker. Default "root".
        :param labels: Labels for placement selectors. Default none.
        """
        self.name, self.address, self.host_public_key = name, address, host_public_key
        self.port, self.user, self.labels = port, user, dict(labels or {})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address, "host_public_key": self.host_public_key,
                "port": self.port, "user": self.user, "labels": self.labels}


class FleetArgs:
    def __init__(self, *, hosts: Sequence[HostArgs], ssh_private_key: pulumi.Input[str],
                 control_port: int = 7701, invoke_port: int = 9000,
                 runtime_images: Optional[Mapping[str, str]] = None, idle_timeout_seconds: float = 300) -> None:
        """
        :param hosts: The hosts. At least one.
        :param ssh_private_key: The private key SSH logs in with (OpenSSH or PEM, unencrypted). Always stored as a
               secret.
        :param control_port: The agent's control API port, bound to each host's loopback only and reached through
               SSH. Default 7701.
        :param invoke_port: The port of the FC-shaped invoke API on each host. Default 9000.
        :param runtime_images: Runtime name to image reference, e.g. {"python3.11": "python:3.11-slim"} on hosts that
               reach a registry. Default: the offline images the project builds (fc-runtime/python3.11).
        :param idle_timeout_seconds: An instance idle this long is removed (scale to zero). Default 300.
        """
        self.hosts = list(hosts)
        self.ssh_private_key = ssh_private_key
        self.control_port, self.invoke_port = control_port, invoke_port
        self.runtime_images = dict(runtime_images or {})
        self.idle_timeout_seconds = idle_timeout_seconds

    @classmethod
    def from_fleet_file(cls, path: str | Path, **overrides: Any) -> "FleetArgs":
        """Reads a fleet file (as ``fc-lab up`` writes): hosts, SSH user and the private key's path."""
        data = json.loads(Path(path).read_text())
        hosts = [HostArgs(name=h["name"], address=h["address"], host_public_key=h["host_public_key"],
                          port=h.get("port", 22), user=h.get("user", data.get("ssh_user", "root")),
                          labels=h.get("labels")) for h in data["hosts"]]
        key = pulumi.Output.secret(Path(data["ssh_private_key_path"]).read_text())
        return cls(hosts=hosts, ssh_private_key=key, **overrides)


def _connection(props: dict[str, Any], token: str) -> dict[str, Any]:
    return {"hosts": props["hosts"], "private_key": props["ssh_private_key"], "token": token,
            "control_port": props["control_port"], "invoke_port": props["invoke_port"]}


def _settings(props: dict[str, Any]) -> dict[str, Any]:
    return {k: props[k] for k in _SETTINGS if props.get(k) not in (None, {}, [])}


class FleetProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = [CheckFailure(p, r) for p, r in check(FleetModel, news)]
        return CheckResult(news, failures)

    def _deploy(self, props: dict[str, Any], token: str, *, rolling: bool) -> dict[str, Any]:
        conn = ops.FleetConnection.from_dict(_connection(props, token))
        settings = _settings(props)
        if rolling:  # upgrades go host by host: a host that fails its health gate stops the roll-out
            infos = {}
            for host in conn.hosts:
                infos.update(ops.on_hosts("agent upgrade", [host], lambda h: ops.install_agent(conn, h, settings)))
        else:
            infos = ops.on_hosts("agent install", list(conn.hosts), lambda h: ops.install_agent(conn, h, settings))
        return {**props, "token": token, "connection": _connection(props, token),
                "agent_versions": {name: info["version"] for name, info in infos.items()}}

    def create(self, props: dict[str, Any]) -> CreateResult:
        token = secrets.token_urlsafe(32)
        outs = self._deploy(props, token, rolling=False)
        return CreateResult(id_=f"fleet-{secrets.token_hex(4)}", outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = sorted(k for k in news if k not in _OUTPUT_ONLY and olds.get(k) != news.get(k))
        drifted = any(v != news.get("agent_version") for v in (olds.get("agent_versions") or {}).values())
        if drifted and "agent_version" not in keys:
            keys.append("agent_version")
        return DiffResult(changes=bool(keys), replaces=[], stables=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        removed = [h for h in olds["hosts"] if h["name"] not in {n["name"] for n in news["hosts"]}]
        outs = self._deploy(news, olds["token"], rolling=True)
        if removed:
            conn = ops.FleetConnection.from_dict(_connection({**olds, "hosts": removed}, olds["token"]))
            ops.on_hosts("agent removal", list(conn.hosts), lambda h: ops.uninstall_agent(conn, h))
        return UpdateResult(outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh: which agent version answers healthy on each host now. A host whose agent is gone, stopped or
        of another version shows up as drift, and the next `pulumi up` reinstalls it."""
        conn = ops.FleetConnection.from_dict(_connection(props, props["token"]))

        def probe(host: ops.HostSpec) -> str:
            try:
                with ops.agent_session(conn, host) as (ssh, agent):
                    agent.health()
                    current = ssh.run(["readlink", f"{cmd.AGENT_ROOT}/current"], check=False).stdout.strip()
                    return current.rsplit("/", 1)[-1] or "unknown"
            except FcProviderError as exc:
                return f"unavailable: {getattr(exc, 'reason', exc)}"[:200]

        versions = {h.name: probe(h) for h in conn.hosts}
        return ReadResult(id_, {**props, "agent_versions": versions})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        conn = ops.FleetConnection.from_dict(_connection(props, props["token"]))
        ops.on_hosts("agent removal", list(conn.hosts), lambda h: ops.uninstall_agent(conn, h))


class Fleet(pulumi.dynamic.Resource):
    """Hosts reached over SSH, each running the runtime agent (installed, upgraded and started by this resource).

    Outputs: ``connection`` (secret: what Functions use to reach the fleet), ``token`` (secret: the control API
    bearer token), ``agent_versions`` (per host), ``hosts``.
    """

    connection: pulumi.Output[dict]
    token: pulumi.Output[str]
    agent_versions: pulumi.Output[dict]
    hosts: pulumi.Output[list]

    def __init__(self, resource_name: str, args: FleetArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {
            "hosts": [h.to_dict() for h in args.hosts],
            "ssh_private_key": pulumi.Output.secret(args.ssh_private_key),
            "control_port": args.control_port,
            "invoke_port": args.invoke_port,
            "runtime_images": args.runtime_images,
            "idle_timeout_seconds": args.idle_timeout_seconds,
            "agent_version": agent_version(),
            "token": None,
            "connection": None,
            "agent_versions": None,
        }
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["token", "connection", "ssh_private_key"]))
        super().__init__(FleetProvider(), resource_name, props, opts)
