"""The ``Fleet`` resource: the hosts that run functions, and the runtime agent installed on each of them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from pathlib import Path
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

from ._errors import FcProviderError, brief_errors
from ._inputs import HostCapacityArgs, HostGpusArgs, InvokePortGuardsArgs, NatsTaskQueueArgs, StemCellsArgs, nested
from ._model.bundle import agent_version
from ._model.images import described, project_tarballs
from ._model.natsconf import CLIENT_PORT, NATS_USER, members, nats_server_build
from ._model.validation import FleetModel, check
from ._remote import commands as cmd
from ._remote import fleetops as ops
from ._remote import natsops
from ._remote.lock import DEFAULT_TIMEOUT_SECONDS

_SETTINGS = ("runtime_images", "idle_timeout_seconds", "stem_cells")
_OUTPUT_ONLY = {"__provider", "token", "connection", "agent_versions", "missing_images", "nats_password"}
_NOT_DIFFED = _OUTPUT_ONLY | {"stack", "fleet_name"}  # who deploys is recorded, not configured


class HostArgs:
    """One host of the fleet, reached over SSH."""

    def __init__(self, *, name: str, address: str, host_public_key: str, port: int = 22, user: str = "root",
                 labels: Optional[Mapping[str, str]] = None,
                 capacity: Union[HostCapacityArgs, Mapping[str, float], None] = None,
                 gpus: Union[HostGpusArgs, Mapping[str, Any], None] = None) -> None:
        """
        :param name: A unique name for the host within the fleet (shown in every error about it).
        :param address: The address SSH connects to.
        :param host_public_key: The host's SSH public key, "ssh-ed25519 AAAA...". Connections to a host that shows
               another key are refused (strict host-key checking, always on).
        :param port: The SSH port. Default 22.
        :param user: The SSH user: root, or a user with passwordless sudo (every command then runs through
               ``sudo -n``; uploads are moved into place by root). Default "root".
        :param labels: Labels for placement selectors. Default none.
        :param capacity: ``fc.HostCapacityArgs`` or the same as a dict: what functions may reserve on this host,
               {"cpu": vCPUs > 0, "memory_mb": MB >= 128}. The agent starts no instance past it, and placement
               counts it. Default: what the agent detects (all CPUs, all memory).
        :param gpus: ``fc.HostGpusArgs`` or the same as a dict: the host's real cards {"type": "fc.gpu.ada.1",
               "source": "nvml" | "nvidia-smi"} (found and counted by the agent; the host needs the NVIDIA driver
               and container toolkit), or simulated cards for a lab without a GPU {"simulated": [{"type":
               "fc.gpu.tesla.1", "count": 2}]}, optionally split into MIG devices "mig_profiles": ["3g.48gb", ...]
               (named SIMULATED everywhere; never mixed with real ones). Default
               none: the host runs no GPU function.
        """
        self.name, self.address, self.host_public_key = name, address, host_public_key
        self.port, self.user, self.labels = port, user, dict(labels or {})
        self.capacity = nested("capacity", capacity, HostCapacityArgs, empty_is_unset=False)
        self.gpus = nested("gpus", gpus, HostGpusArgs)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address, "host_public_key": self.host_public_key,
                "port": self.port, "user": self.user, "labels": self.labels, "capacity": self.capacity,
                **({"gpus": self.gpus} if self.gpus else {})}


class FleetArgs:
    def __init__(self, *, hosts: Sequence[HostArgs], ssh_private_key: pulumi.Input[str],
                 control_port: int = 7701, invoke_port: int = 9000,
                 runtime_images: Optional[Mapping[str, str]] = None, idle_timeout_seconds: float = 300,
                 lock_timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
                 image_tarballs: Optional[Mapping[str, str]] = None,
                 invoke_port_guards: Union[InvokePortGuardsArgs, Mapping[str, Any], None] = None,
                 stem_cells: Union[StemCellsArgs, Mapping[str, Any], None] = None,
                 task_queue: Union[str, NatsTaskQueueArgs, Mapping[str, Any]] = "local") -> None:
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
        :param lock_timeout_seconds: How long a change waits for the deploy lock another stack's deploy holds on a
               host before it fails naming the holder; 0 fails at once. Default 120.
        :param image_tarballs: Image reference to a local image tarball (``docker save`` output, or a root
               filesystem tarball as the project builds), shipped to every host whose engine lacks that image
               (content-addressed by sha256: a rebuilt tarball ships again; a host that has the image gets nothing),
               so hosts need no registry. Default: each image the fleet's runtimes use that the project built on
               this machine (``fc-lab images``: ``$FC_CACHE_DIR/images/fc-runtime-<name>.tar`` as
               ``fc-runtime/<name>:latest``); {} ships nothing.
        :param invoke_port_guards: ``fc.InvokePortGuardsArgs`` or the same as a dict: the invoke port's head and
               keep-alive timeouts and its connection cap. Default: 10 s, 60 s, 1024 connections.
        :param stem_cells: ``fc.StemCellsArgs`` or the same as a dict: keep started, code-less runtime containers
               that cold starts take (tens of milliseconds instead of a container start). Default on, sized by
               demand ({"enabled": False} turns them off).
        :param task_queue: Where asynchronous tasks wait: "local" (each host's own SQLite queue: a task waits on
               the host that accepted it), or ``fc.NatsTaskQueueArgs(hosts=[3 host names])`` / the same as
               {"nats": {"hosts": [...], "ack_wait_seconds": 30}}: a NATS JetStream cluster on those hosts (the
               Fleet ships nats-server and keeps it running), shared by every host, so any host accepts and any
               host runs, and a whole host lost loses no task. Default "local".
        """
        self.hosts = list(hosts)
        self.ssh_private_key = ssh_private_key
        self.control_port, self.invoke_port = control_port, invoke_port
        self.runtime_images = dict(runtime_images or {})
        self.idle_timeout_seconds = idle_timeout_seconds
        self.lock_timeout_seconds = lock_timeout_seconds
        self.stem_cells = nested("stem_cells", stem_cells, StemCellsArgs)
        self.image_tarballs = dict(project_tarballs(runtime_images) if image_tarballs is None else image_tarballs)
        self.invoke_port_guards = nested("invoke_port_guards", invoke_port_guards, InvokePortGuardsArgs) or {}
        self.task_queue = task_queue if isinstance(task_queue, str) else (
            task_queue.to_input() if isinstance(task_queue, NatsTaskQueueArgs) else nested(
                "task_queue", task_queue, NatsTaskQueueArgs))

    @classmethod
    def from_fleet_file(cls, path: str | Path, **overrides: Any) -> "FleetArgs":
        """Reads a fleet file (as ``fc-lab up`` writes): hosts, SSH user and the private key's path."""
        data = json.loads(Path(path).read_text())
        hosts = [HostArgs(name=h["name"], address=h["address"], host_public_key=h["host_public_key"],
                          port=h.get("port", 22), user=h.get("user", data.get("ssh_user", "root")),
                          labels=h.get("labels"), capacity=h.get("capacity"), gpus=h.get("gpus"))
                 for h in data["hosts"]]
        key = pulumi.Output.secret(Path(data["ssh_private_key_path"]).read_text())
        return cls(hosts=hosts, ssh_private_key=key, **overrides)


def _connection(props: dict[str, Any], token: str) -> dict[str, Any]:
    return {"hosts": props["hosts"], "private_key": props["ssh_private_key"], "token": token,
            "control_port": props["control_port"], "invoke_port": props["invoke_port"],
            "lock_timeout_seconds": props.get("lock_timeout_seconds", DEFAULT_TIMEOUT_SECONDS),
            # Functions check at preview that a runtime not built here is mapped to an image.
            "runtime_images": dict(props.get("runtime_images") or {}),
            "stack": props.get("stack") or ""}


def _settings(props: dict[str, Any], host_name: str) -> dict[str, Any]:
    """The agent config of one host, beyond name, token and ports."""
    settings = {k: props[k] for k in _SETTINGS if props.get(k) not in (None, {}, [])}
    settings.update(props.get("invoke_port_guards") or {})  # the agent config's own names
    host = next(h for h in props["hosts"] if h["name"] == host_name)
    capacity = host.get("capacity")
    if capacity:  # absent means the agent detects it (null: the agent detects it)
        settings["capacity_cpu"] = float(capacity["cpu"])
        settings["capacity_memory_mb"] = int(capacity["memory_mb"])
    if host.get("gpus"):
        settings["gpus"] = host["gpus"]
    nats = _nats(props)
    if nats:  # every host's agent uses the cluster, member or not
        addresses = {h["name"]: h["address"] for h in props["hosts"]}
        settings["task_queue"] = {"nats": {
            "servers": [f"nats://{addresses[n]}:{CLIENT_PORT}" for n in nats["hosts"]], "user": NATS_USER,
            "password": props["nats_password"], "replicas": len(nats["hosts"]),
            "ack_wait_seconds": float(nats.get("ack_wait_seconds", 30))}}
    return settings


def _nats(props: dict[str, Any]) -> dict[str, Any] | None:
    queue = props.get("task_queue")
    return queue.get("nats") if isinstance(queue, dict) else None


def _with_nats_password(props: dict[str, Any], olds: dict[str, Any] | None = None) -> dict[str, Any]:
    """The cluster's password (a secret output): generated once, kept across updates."""
    if not _nats(props):
        return {**props, "nats_password": None}
    return {**props, "nats_password": (olds or {}).get("nats_password") or secrets.token_urlsafe(24)}


def _install_queue_members(props: dict[str, Any], conn: ops.FleetConnection) -> None:
    """Ships nats-server to the queue's hosts, writes each member's config and (re)starts it."""
    nats = _nats(props)
    if not nats:
        return
    addresses = {h["name"]: h["address"] for h in props["hosts"]}
    configs = {m.server_name: m for m in members([(n, addresses[n]) for n in nats["hosts"]],
                                                 props["nats_password"], sync_always=True)}
    binary = nats_server_build()
    ops.on_hosts("task queue member", [h for h in conn.hosts if h.name in configs],
                 lambda h: natsops.install_member(conn.private_key, h, configs[h.name], binary))


def _retire_queue_members(olds: dict[str, Any], news: dict[str, Any], conn: ops.FleetConnection) -> None:
    """Stops the queue members of hosts that stay in the fleet but leave the queue (back to "local", or other
    hosts named); hosts that leave the fleet lose theirs with the agent."""
    staying = set((_nats(news) or {}).get("hosts") or [])
    leaving = [h for h in conn.hosts if h.name in set((_nats(olds) or {}).get("hosts") or []) - staying]
    ops.on_hosts("task queue member removal", leaving, lambda h: natsops.retire_member(conn.private_key, h))


def _registration(id_: str, props: dict[str, Any]) -> str:
    """The name this Fleet registers under on its hosts: the same for every attempt of one stack's Fleet (a failed
    create leaves no stray registration behind), different between stacks."""
    if props.get("stack") and props.get("fleet_name"):
        return "fleet-" + hashlib.sha256(f"{props['stack']}/{props['fleet_name']}".encode()).hexdigest()[:16]
    return id_  # state written before registrations existed


def _digests(props: dict[str, Any]) -> dict[str, str]:
    return {ref: str(image.get("sha256")) for ref, image in (props.get("images") or {}).items()
            if isinstance(image, dict)}


class FleetProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = [CheckFailure(p, r) for p, r in check(FleetModel, news)]
        if _nats(news) and not nats_server_build().is_file():
            failures.append(CheckFailure("task_queue", f"task_queue.nats: the nats-server build "
                                         f"{nats_server_build()} does not exist; run scripts/build-nats-server.sh "
                                         f"(scripts/setup.sh does) or set FC_NATS_SERVER to a nats-server 2.10+"))
        failures += [CheckFailure("image_tarballs", f"{ref}: {image['error']}")
                     for ref, image in sorted((news.get("images") or {}).items())
                     if isinstance(image, dict) and image.get("error")]
        return CheckResult(news, failures)

    def _deploy(self, props: dict[str, Any], seed_token: str, registration: str, *, rolling: bool) -> dict[str, Any]:
        """Installs or upgrades every host's agent; a host that already runs this version and config is left as
        it is. Hosts keep the token they have (other stacks hold it); if the hosts end up with different tokens,
        the connection carries none and each session reads its host's token over SSH."""
        conn = ops.FleetConnection.from_dict(_connection(props, seed_token))

        def install(host: ops.HostSpec) -> dict[str, Any]:
            info = ops.install_agent(conn, host, _settings(props, host.name), registration)
            # The host keeps its own token (a shared agent): talk to it with that one.
            images = ops.ship_images(dataclasses.replace(conn, token=info["token"]), host, props.get("images") or {})
            return {**info, "images": images}

        if rolling:  # upgrades go host by host: a host that fails its health gate stops the roll-out
            infos = ops.roll("agent upgrade", list(conn.hosts), install)
        else:
            infos = ops.on_hosts("agent install", list(conn.hosts), install)
        _install_queue_members(props, conn)  # after the agents: the supervisor runs from the agent's release
        tokens = {info["token"] for info in infos.values()}
        token = tokens.pop() if len(tokens) == 1 else ""
        return {**props, "token": token, "connection": _connection(props, token),
                "agent_versions": {name: info["version"] for name, info in infos.items()}}

    @brief_errors
    def create(self, props: dict[str, Any]) -> CreateResult:
        conn = ops.FleetConnection.from_dict(_connection(props, ""))
        with ops.fleet_lock(conn, list(conn.hosts), "agent install"):
            # A host may already run an agent for another stack: share it, and its token.
            found = {t for t in ops.host_tokens(conn).values() if t}
            seed = found.pop() if len(found) == 1 else secrets.token_urlsafe(32)
            outs = self._deploy(_with_nats_password(props), seed, _registration("", props), rolling=False)
        return CreateResult(id_=f"fleet-{secrets.token_hex(4)}", outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = sorted(k for k in news if k not in _NOT_DIFFED | {"images"} and olds.get(k) != news.get(k))
        if _digests(olds) != _digests(news):  # where a tarball sits on this machine is not a change
            keys.append("images")
        drifted = any(v != news.get("agent_version") for v in (olds.get("agent_versions") or {}).values())
        if drifted and "agent_version" not in keys:
            keys.append("agent_version")
        if any((olds.get("missing_images") or {}).values()) and "images" not in keys:
            keys.append("images")  # an engine lost an image the fleet ships (pruned, reinstalled): up ships it again
        return DiffResult(changes=bool(keys), replaces=[], stables=[], delete_before_replace=False)

    @brief_errors
    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        removed = [h for h in olds["hosts"] if h["name"] not in {n["name"] for n in news["hosts"]}]
        registration = _registration(id_, news)
        conn = ops.FleetConnection.from_dict(_connection(news, olds.get("token") or ""))
        old_conn = ops.FleetConnection.from_dict(_connection({**olds, "hosts": removed}, olds.get("token") or ""))
        with ops.fleet_lock(conn, list(conn.hosts) + list(old_conn.hosts), "agent upgrade"):
            outs = self._deploy(_with_nats_password(news, olds), olds.get("token") or secrets.token_urlsafe(32),
                                registration, rolling=True)
            _retire_queue_members(olds, news, conn)
            if removed:  # functions placed there are removed after this (they depend on the fleet): do not wait for them
                ops.on_hosts("agent removal", list(old_conn.hosts),
                             lambda h: ops.retire_agent(old_conn, h, _registration(id_, olds), keep_if_functions=False))
        return UpdateResult(outs=outs)

    @brief_errors
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh: which agent version answers healthy on each host now, and which shipped images its engine lacks.
        A host whose agent is gone, stopped, of another version or unsupervised, whose task queue member is not
        running, or whose engine lost an image, shows up as drift, and the next `pulumi up` reinstalls the agent,
        starts the member or ships the image again."""
        conn = ops.FleetConnection.from_dict(_connection(props, props["token"]))
        shipped = sorted(props.get("images") or {})
        members = set((_nats(props) or {}).get("hosts") or [])

        def probe(host: ops.HostSpec) -> tuple[str, list[str]]:
            try:
                with ops.agent_session(conn, host) as (ssh, agent):
                    agent.health()
                    current = ssh.run(cmd.current_release(), check=False).stdout.strip()
                    version = current.rsplit("/", 1)[-1] or "unknown"
                    missing = [ref for ref in shipped if not agent.has_image(ref)]
                    if ssh.run(cmd.supervision(), check=False).stdout.strip() == "none":
                        return f"unsupervised: {version}", missing  # nothing would restart it: drift, up repairs
                    if host.name in members and ssh.run(cmd.nats_supervised(), check=False).exit_status != 0:
                        return f"task queue member down: {version}", missing  # up starts it again
                    return version, missing
            except FcProviderError as exc:
                return f"unavailable: {getattr(exc, 'reason', exc)}"[:200], []

        found = ops.on_hosts("agent probe", list(conn.hosts), probe)
        return ReadResult(id_, {**props, "agent_versions": {name: v for name, (v, _) in found.items()},
                                "missing_images": {name: m for name, (_, m) in found.items() if m}})

    @brief_errors
    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Uninstalls the agent from hosts no other Fleet (of any stack) uses and where it serves no function."""
        conn = ops.FleetConnection.from_dict(_connection(props, props["token"]))
        registration = _registration(id_, props)
        with ops.fleet_lock(conn, list(conn.hosts), "agent removal"):
            ops.on_hosts("agent removal", list(conn.hosts),
                         lambda h: ops.retire_agent(conn, h, registration, keep_if_functions=True))


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
            "invoke_port_guards": args.invoke_port_guards,
            "lock_timeout_seconds": args.lock_timeout_seconds,
            "stem_cells": args.stem_cells,
            "task_queue": args.task_queue,
            "nats_password": None,
            "images": described(args.image_tarballs),
            "agent_version": agent_version(),
            "stack": f"{pulumi.get_project()}/{pulumi.get_stack()}",
            "fleet_name": resource_name,
            "token": None,
            "connection": None,
            "agent_versions": None,
        }
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["token", "connection", "ssh_private_key", "nats_password"]))
        super().__init__(FleetProvider(), resource_name, props, opts)
