"""Shared by the benchmarks: deploy a throwaway function to a lab host's running agent (its token is read from the
host, so the fleet that installed the agent stays as it is)."""

from __future__ import annotations

import json
import secrets
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from fc_common import acs3
from fc_lab import Lab
from fc_provider._model.archive import pack_code
from fc_provider._remote import fleetops as ops
from fc_provider._remote.commands import code_archive
from fc_provider._remote.signer import Credentials


SYSTEMD_HOST = "lab-systemd"


# Deploy options for a function whose floor is a twin of its container (start_twin): it starts in a container of its
# own, not from a stem cell, whose command, environment and mounts are a cell's. PYTHONHASHSEED is read only when
# an interpreter starts, so it is one of the stem cells' fall-backs (runtime_agent/instances/cellpolicy.py).
OWN_CONTAINER = {"environment_variables": {"PYTHONHASHSEED": "0"}}


def connection(lab: Lab, host_name: str) -> ops.FleetConnection:
    fleet = lab.fleet()
    if host_name == SYSTEMD_HOST:  # not in the fleet file: started on demand
        host = lab.systemd_host()
    else:
        host = next(h for h in fleet["hosts"] if h["name"] == host_name)
    if lab.run(host_name, ["test", "-s", "/etc/fc-agent/config.json"]).returncode != 0:
        # No agent there yet (no quickstart ran): installed as a Fleet would, through the provider's operations.
        installer = ops.FleetConnection.from_dict({"hosts": [{**host, "user": fleet["ssh_user"]}],
                                                   "private_key": lab.client_key_path.read_text(),
                                                   "token": secrets.token_urlsafe(16)})
        ops.install_agent(installer, installer.hosts[0], {"idle_timeout_seconds": 300})
    found = lab.run(host_name, ["cat", "/etc/fc-agent/config.json"], capture_output=True, text=True, check=True)
    config = json.loads(found.stdout)
    return ops.FleetConnection.from_dict({
        "hosts": [{**host, "user": fleet["ssh_user"]}],
        "private_key": Path(fleet["ssh_private_key_path"]).read_text(),
        "token": config["token"], "control_port": config.get("control_port", 7701),
        "invoke_port": config.get("invoke_port", 9000),
    })


@contextmanager
def function(conn: ops.FleetConnection, name: str, source: str, *, filename: str = "index.py",
             **spec: Any) -> Iterator[str]:
    """Deploys ``source`` (as ``filename``: index.js for Node.js) as index.handler; yields the invoke path; removes
    the function afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, filename).write_text(source)
        package = pack_code(tmp)
    with ops.agent_session(conn, conn.hosts[0]) as (ssh, agent):
        ssh.put_bytes(package.data, code_archive(package.checksum))
        agent.put_function(name, {"runtime": "python3.11", "handler": "index.handler", "memory_size": 512,
                                  "timeout": 30, **spec, "code_checksum": package.checksum})
    try:
        yield f"/2023-03-30/functions/{name}/invocations"
    finally:
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
            agent.delete_function(name)


@contextmanager
def bench_key(conn: ops.FleetConnection) -> Iterator[Credentials]:
    """A throwaway access key on the host (every invocation is signed), revoked when the benchmark ends."""
    key = Credentials("LTAIbench" + secrets.token_hex(6), secrets.token_urlsafe(24))
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        agent.put_access_key(key.access_key_id, key.access_key_secret, {"actions": ["fc:*"], "resources": ["*"]})
    try:
        yield key
    finally:
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
            agent.delete_access_key(key.access_key_id)


def signer_source(key: Credentials) -> str:
    """Python source (stdlib only) that defines ``signed(method, path, body) -> headers`` with ``key``, for the
    probes that run inside a lab host: the project's own signing rule, fc_common/acs3.py, then the key."""
    return (Path(acs3.__file__).read_text()
            + f"\nKEY = ({key.access_key_id!r}, {key.access_key_secret!r})\n"
            + "def signed(method, path, body=b''):\n"
            + "    return sign(method, path, {}, {}, body, KEY[0], KEY[1])\n")


def instances(conn: ops.FleetConnection, name: str) -> list[dict]:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        return [i for i in agent.instances() if i["function_name"] == name]


def start_twin(client: Any, instance: Any) -> tuple[Any, str]:
    """The floor of a benchmark: a twin of an instance container (same image, code, runtime, CPU and memory
    limits), started outside the agent, its port 9000 also published on the host's loopback. Returns the
    container and its address."""
    attrs = instance.attrs
    twin = client.containers.run(
        instance.image.id, attrs["Config"]["Cmd"], detach=True, environment=attrs["Config"]["Env"],
        volumes={m["Source"]: {"bind": m["Destination"], "mode": "ro"} for m in attrs["Mounts"]},
        user="65534:65534", labels={"fc.bench": "twin"},
        cpu_period=attrs["HostConfig"]["CpuPeriod"] or None, cpu_quota=attrs["HostConfig"]["CpuQuota"] or None,
        mem_limit=attrs["HostConfig"]["Memory"] or None, ports={"9000/tcp": ("127.0.0.1", None)})
    twin.reload()
    return twin, next(iter(twin.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]


def published_port(twin: Any) -> int:
    """The host loopback port Docker published the twin's port 9000 on (served by docker-proxy)."""
    return int(twin.attrs["NetworkSettings"]["Ports"]["9000/tcp"][0]["HostPort"])


@contextmanager
def layer(conn: ops.FleetConnection, name: str, files: dict[str, str], runtime: str) -> Iterator[str]:
    """Publishes ``files`` (path -> text) as a new version of layer ``name``; yields its ARN; deletes it afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        for path, text in files.items():
            Path(tmp, path).parent.mkdir(parents=True, exist_ok=True)
            Path(tmp, path).write_text(text)
        package = pack_code(tmp)
    with ops.agent_session(conn, conn.hosts[0]) as (ssh, agent):
        ssh.put_bytes(package.data, code_archive(package.checksum))
        version = agent.next_layer_version(name)
        record = agent.put_layer_version(name, version, {"code_checksum": package.checksum,
                                                         "code_size": len(package.data),
                                                         "compatible_runtime": [runtime]})
    try:
        yield record["layer_version_arn"]
    finally:
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
            agent.delete_layer_version(name, version)
