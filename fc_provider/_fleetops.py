"""Operations across a fleet: one SSH session per host per operation, hosts in parallel with a bound, and every
host's error named. A failure on one host never hides the results of the others."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

from . import _commands as cmd
from ._agent_client import AgentClient
from ._bundle import agent_bundle, agent_version
from ._errors import FcProviderError, FleetOperationError, RemoteCommandFailed
from ._ssh import HostSpec, SSHSession

T = TypeVar("T")
MAX_PARALLEL_HOSTS = 8


@dataclass(frozen=True)
class FleetConnection:
    """What every fleet operation needs; the Fleet resource outputs it (as a secret) for Functions to use."""

    hosts: tuple[HostSpec, ...]
    private_key: str
    # Empty: read the token from each host's agent config over SSH (root-only file), e.g. for the `fc` CLI.
    token: str
    control_port: int
    invoke_port: int

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FleetConnection":
        return cls(tuple(HostSpec.from_dict(h) for h in d["hosts"]), d["private_key"], d.get("token", ""),
                   int(d.get("control_port", 7701)), int(d.get("invoke_port", 9000)))

    def host(self, name: str) -> HostSpec:
        for h in self.hosts:
            if h.name == name:
                return h
        raise FcProviderError(f"host {name} is not part of the fleet ({', '.join(h.name for h in self.hosts)})")


@contextmanager
def agent_session(conn: FleetConnection, host: HostSpec) -> Iterator[tuple[SSHSession, AgentClient]]:
    with SSHSession(host, conn.private_key) as ssh:
        client = AgentClient(host.name, ssh.transport, conn.control_port, conn.token or _host_token(ssh))
        try:
            yield ssh, client
        finally:
            client.close()


def _host_token(ssh: SSHSession) -> str:
    result = ssh.run(cmd.read_agent_config(), check=False)
    if result.exit_status != 0:
        return ""  # no agent installed yet: the first request reports it as unauthorized or unreachable
    try:
        return str(json.loads(result.stdout)["token"])
    except (ValueError, KeyError) as exc:
        raise RemoteCommandFailed(ssh.host.name, cmd.read_agent_config(), 1, f"unreadable agent config: {exc}") from exc


def on_hosts(operation: str, hosts: list[HostSpec], work: Callable[[HostSpec], T]) -> dict[str, T]:
    """Runs ``work`` on every host (bounded parallelism); raises FleetOperationError naming each failed host."""
    results: dict[str, T] = {}
    errors: dict[str, Exception] = {}
    if not hosts:
        return results
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_HOSTS, len(hosts))) as pool:
        futures = {h.name: pool.submit(work, h) for h in hosts}
        for name, fut in futures.items():
            try:
                results[name] = fut.result()
            except FcProviderError as exc:
                errors[name] = exc
    if errors:
        raise FleetOperationError(operation, errors, sorted(results))
    return results


def agent_config(conn: FleetConnection, host: HostSpec, settings: dict[str, Any]) -> bytes:
    config = {"host_name": host.name, "token": conn.token, "control_port": conn.control_port,
              "invoke_port": conn.invoke_port, **settings}
    return json.dumps(config, indent=2, sort_keys=True).encode()


def install_agent(conn: FleetConnection, host: HostSpec, settings: dict[str, Any]) -> dict[str, Any]:
    """Installs (or upgrades) the agent on one host, restarts it and waits until it answers healthy."""
    version = agent_version()
    with agent_session(conn, host) as (ssh, client):
        remote_py = ssh.run(cmd.python_version()).stdout.strip()
        bundled_py = version.rsplit("-py", 1)[1]
        if remote_py != bundled_py:
            raise RemoteCommandFailed(host.name, cmd.python_version(), 1,
                                      f"the host has Python {remote_py}; the agent bundle was built for Python "
                                      f"{bundled_py}. Run the provider with Python {remote_py} or upgrade the host.")
        ssh.run(cmd.prepare_dirs())
        if ssh.run(cmd.path_exists(cmd.release_dir(version)), check=False).exit_status != 0:
            archive = f"{cmd.AGENT_ROOT}/releases/{version}.tar.gz"
            ssh.put_bytes(agent_bundle().data, archive)
            ssh.run(cmd.unpack_release(archive, version))
        ssh.put_bytes(agent_config(conn, host, settings), cmd.AGENT_CONFIG, mode=0o600)
        ssh.run(cmd.activate_release(version))
        ssh.run(cmd.stop_agent())
        try:
            ssh.run(cmd.start_agent())
            info = client.wait_healthy()
        except FcProviderError as exc:
            tail = ssh.run(cmd.agent_log_tail(), check=False).stdout
            raise RemoteCommandFailed(host.name, ["runtime_agent"], 1, f"{exc}\nagent log:\n{tail}") from exc
        return {**info, "version": version}


def uninstall_agent(conn: FleetConnection, host: HostSpec) -> None:
    with SSHSession(host, conn.private_key) as ssh:
        ssh.run(cmd.stop_agent())
        ssh.run(cmd.purge_instances())
        ssh.run(cmd.uninstall_agent())
