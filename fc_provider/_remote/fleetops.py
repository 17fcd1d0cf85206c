"""Operations across a fleet: hosts in parallel with a bound (or one by one behind a health gate), one shared SSH
connection per host per provider process (``_pool``), the deploy lock (``_lock``) around every change, and every
host's error named. A failure on one host never hides the results of the others."""

from __future__ import annotations

import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, TypeVar

from .._errors import (
    AgentAPIError,
    FcProviderError,
    FleetOperationError,
    HostError,
    HostUnreachable,
    RemoteCommandFailed,
)
from .._model.bundle import agent_bundle, agent_version
from . import commands as cmd
from . import lock as _lock
from . import pool as _pool
from .agent_client import AgentClient
from .ssh import HostSpec, SSHSession
from .unit import render_unit

MIN_HOST_PYTHON = (3, 10)  # the bundle is checked to parse and run on 3.10-3.13 (tests/test_host_python.py)

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
    lock_timeout_seconds: float = _lock.DEFAULT_TIMEOUT_SECONDS
    stack: str = ""  # "project/stack" of the Fleet's program, recorded as the deploy lock's holder

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FleetConnection":
        return cls(tuple(HostSpec.from_dict(h) for h in d["hosts"]), d["private_key"], d.get("token", ""),
                   int(d.get("control_port", 7701)), int(d.get("invoke_port", 9000)),
                   float(_lock.DEFAULT_TIMEOUT_SECONDS if d.get("lock_timeout_seconds") is None
                         else d["lock_timeout_seconds"]), str(d.get("stack") or ""))

    def host(self, name: str) -> HostSpec:
        for h in self.hosts:
            if h.name == name:
                return h
        raise FcProviderError(f"host {name} is not part of the fleet ({', '.join(h.name for h in self.hosts)})")


@contextmanager
def agent_session(conn: FleetConnection, host: HostSpec) -> Iterator[tuple[SSHSession, AgentClient]]:
    """The host's shared SSH session and an agent client on it (its own channel, closed at the end)."""
    with _pool.session(host, conn.private_key) as ssh:
        client = AgentClient(host.name, ssh.transport, conn.control_port, conn.token or _host_token(ssh))
        try:
            yield ssh, client
        finally:
            client.close()


@contextmanager
def fleet_lock(conn: FleetConnection, hosts: list[HostSpec], operation: str) -> Iterator[None]:
    """The deploy lock of ``hosts`` around a change (see ``_lock``): ``with fleet_lock(conn, hosts, "deploy of
    function f"): ...``. Re-entrant within one provider process; waits up to conn.lock_timeout_seconds."""
    with _lock.fleet_lock(conn.private_key, hosts, operation=operation, stack=conn.stack,
                          timeout=conn.lock_timeout_seconds):
        yield


def lock_holders(conn: FleetConnection) -> dict[str, Optional[dict[str, Any]]]:
    """Each host's deploy-lock holder record (None: free), e.g. for the fc CLI."""
    return on_hosts("lock status", list(conn.hosts), lambda h: _lock.read_holder(conn.private_key, h))


def break_lock(conn: FleetConnection, host: HostSpec) -> Optional[dict[str, Any]]:
    """Breaks ``host``'s deploy lock whoever holds it; returns the removed holder record. For stale locks only."""
    return _lock.break_lock(conn.private_key, host)


def _host_config(ssh: SSHSession) -> Optional[dict[str, Any]]:
    result = ssh.run(cmd.read_agent_config(), check=False)
    if result.exit_status != 0:
        return None  # no agent installed yet
    try:
        config = json.loads(result.stdout)
        str(config["token"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RemoteCommandFailed(ssh.host.name, cmd.read_agent_config(), 1, f"unreadable agent config: {exc}") from exc
    return dict(config)


def _host_token(ssh: SSHSession) -> str:
    # No agent installed yet gives "": the first request reports it as unauthorized or unreachable.
    return str((_host_config(ssh) or {}).get("token", ""))


def host_tokens(conn: FleetConnection) -> dict[str, str]:
    """The token of the agent already on each host; "" where none is installed or the host does not answer (the
    install that follows reports why)."""
    def read(host: HostSpec) -> str:
        try:
            with _pool.session(host, conn.private_key) as ssh:
                return _host_token(ssh)
        except HostError:
            return ""
    return on_hosts("agent token lookup", list(conn.hosts), read)


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


def ask_agents(conn: FleetConnection, hosts: list[HostSpec], operation: str, ask: Callable[[AgentClient], T],
               absent: T = None) -> dict[str, T]:  # type: ignore[assignment]
    """``ask(agent)`` of every host's agent, in parallel: what refreshes and best-effort removals need. A host whose
    agent cannot be reached or refuses gives ``absent``: an agent that does not answer serves nothing, which a
    refresh reports as drift and the next `up` repairs."""
    def one(host: HostSpec) -> T:
        try:
            with agent_session(conn, host) as (_ssh, agent):
                return ask(agent)
        except (HostUnreachable, AgentAPIError):
            return absent

    return on_hosts(operation, hosts, one)


def roll(operation: str, hosts: list[HostSpec], work: Callable[[HostSpec], T]) -> dict[str, T]:
    """Runs ``work`` host by host; the first host that fails (e.g. its health gate) stops the roll, and the error
    names it, the hosts already done and the hosts left untouched."""
    results: dict[str, T] = {}
    for index, host in enumerate(hosts):
        try:
            results[host.name] = work(host)
        except FcProviderError as exc:
            raise FleetOperationError(operation, {host.name: exc}, sorted(results),
                                      not_attempted=[h.name for h in hosts[index + 1:]]) from exc
    return results


def agent_config(conn: FleetConnection, host: HostSpec, settings: dict[str, Any], token: str) -> dict[str, Any]:
    return {"host_name": host.name, "token": token, "control_port": conn.control_port,
            "invoke_port": conn.invoke_port, **settings}


def install_agent(conn: FleetConnection, host: HostSpec, settings: dict[str, Any],
                  fleet_id: str = "") -> dict[str, Any]:
    """Installs (or upgrades) the agent on one host, restarts it and waits until it answers healthy; registers
    ``fleet_id`` (if given) as one of its users. An agent already there with this version and config is left running (another
    stack's Fleet on the same hosts shares it), and its token is kept: other stacks hold it."""
    version = agent_version()
    with _pool.session(host, conn.private_key) as ssh:
        existing = _host_config(ssh)
        token = str((existing or {}).get("token") or conn.token or secrets.token_urlsafe(32))
        config = agent_config(conn, host, settings, token)
        client = AgentClient(host.name, ssh.transport, conn.control_port, token)
        try:
            info = _running_as_wanted(ssh, client, existing == config, version)
            installed = info is None
            if info is None:
                info = _install(ssh, client, config, version)
            if fleet_id:
                ssh.run(cmd.register_fleet(fleet_id, conn.stack or fleet_id))
        finally:
            client.close()
        return {**info, "version": version, "token": token, "installed": installed}


def _running_as_wanted(ssh: SSHSession, client: AgentClient, same_config: bool,
                       version: str) -> Optional[dict[str, Any]]:
    if not same_config or ssh.run(cmd.current_release(), check=False).stdout.strip() != cmd.release_dir(version):
        return None
    if ssh.run(cmd.supervision(), check=False).stdout.strip() == "none":
        return None  # running, but nothing would restart it: reinstall under supervision
    try:
        return client.wait_healthy(timeout=0)
    except (HostUnreachable, AgentAPIError):
        return None  # installed but not answering: reinstall and restart


def python_problem(host_name: str, version: str) -> Optional[str]:
    """Why the host's python3 cannot run the agent, or None."""
    try:
        found = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return f"host {host_name}: python3 reports an unreadable version {version[:40]!r}"
    if found < MIN_HOST_PYTHON:
        return (f"host {host_name} has Python {version}; the agent needs Python "
                f"{'.'.join(map(str, MIN_HOST_PYTHON))} or newer as python3 (Ubuntu 22.04+, Debian 12+)")
    return None


def _install(ssh: SSHSession, client: AgentClient, config: dict[str, Any], version: str) -> dict[str, Any]:
    host = ssh.host
    remote_py, _, python_path = ssh.run(cmd.python_version()).stdout.strip().partition(" ")
    problem = python_problem(host.name, remote_py)
    if problem:
        raise RemoteCommandFailed(host.name, cmd.python_version(), 1, problem)
    ssh.run(cmd.prepare_dirs())
    if ssh.run(cmd.path_exists(cmd.release_dir(version)), check=False).exit_status != 0:
        archive = f"{cmd.AGENT_ROOT}/releases/{version}.tar.gz"
        ssh.put_bytes(agent_bundle().data, archive)
        ssh.run(cmd.unpack_release(archive, version))
    ssh.put_bytes(json.dumps(config, indent=2, sort_keys=True).encode(), cmd.AGENT_CONFIG, mode=0o600)
    ssh.run(cmd.activate_release(version))
    ssh.run(cmd.stop_agent())
    if ssh.run(cmd.has_systemd(), check=False).exit_status == 0:  # else runtime_agent.supervisor keeps it alive
        ssh.put_bytes(render_unit(python_path).encode(), cmd.SYSTEMD_UNIT, mode=0o644)
    try:
        ssh.run(cmd.start_agent())
        return client.wait_healthy()
    except FcProviderError as exc:
        tail = ssh.run(cmd.agent_log_tail(), check=False).stdout
        # The log first, trimmed: the error keeps its last 500 characters, and the health gate must be among them.
        reason = str(getattr(exc, "reason", exc))
        raise RemoteCommandFailed(host.name, ["runtime_agent"], 1,
                                  f"agent log:\n{tail[-250:]}\nhealth gate failed: {reason[-200:]}") from exc


def ship_images(conn: FleetConnection, host: HostSpec, images: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Puts every image of ``images`` ({ref: {"path", "sha256"}}) into the host's engine where it is missing:
    uploads the tarball (content-addressed; an upload already there is reused) and has the agent load it. Returns
    what happened per image: "present" or "shipped"."""
    done: dict[str, str] = {}
    if not images:
        return done
    with agent_session(conn, host) as (ssh, agent):
        for ref, image in sorted(images.items()):
            if agent.has_image(ref):
                done[ref] = "present"
                continue
            if image.get("error") or not image.get("sha256"):
                raise RemoteCommandFailed(host.name, ["load image", ref], 1, f"image {ref} is missing on the host "
                                          f"and cannot be shipped: {image.get('error') or 'no tarball'}")
            target = cmd.image_tarball(image["sha256"])
            ssh.run(cmd.prepare_image_dir())
            if ssh.run(cmd.path_exists(target), check=False).exit_status != 0:
                ssh.put_file(image["path"], target, mode=0o600)
            agent.load_image(ref, target.rsplit("/", 1)[-1])
            done[ref] = "shipped"
    return done


def retire_agent(conn: FleetConnection, host: HostSpec, fleet_id: str, *, keep_if_functions: bool) -> str:
    """Deregisters ``fleet_id`` from the host's agent and uninstalls the agent if nobody else uses it: no other
    Fleet resource (of any stack) is registered and, with ``keep_if_functions``, it serves no function (a Fleet is
    deleted after its own Functions, so any function left belongs to someone else). Returns what it did."""
    with _pool.session(host, conn.private_key) as ssh:
        others = ssh.run(cmd.deregister_fleet(fleet_id)).stdout.split()
        if others:
            return f"kept: still used by {len(others)} other fleet(s)"
        if keep_if_functions:
            names = _function_names(conn, ssh)
            if names:
                return f"kept: still serves {', '.join(sorted(names)[:5])}"
        _uninstall(ssh)
        return "removed"


def uninstall_agent(conn: FleetConnection, host: HostSpec) -> None:
    """Stops the agent, removes its containers and every file of it, whoever else uses it."""
    with _pool.session(host, conn.private_key) as ssh:
        _uninstall(ssh)


def _uninstall(ssh: SSHSession) -> None:
    ssh.run(cmd.stop_agent())
    ssh.run(cmd.stop_nats())  # the task queue's member, on a queue host
    ssh.run(cmd.remove_unit())
    ssh.run(cmd.purge_instances())
    ssh.run(cmd.uninstall_agent())


def _function_names(conn: FleetConnection, ssh: SSHSession) -> list[str]:
    token = _host_token(ssh)
    if not token:
        return []
    client = AgentClient(ssh.host.name, ssh.transport, conn.control_port, token)
    try:
        return [f["function_name"] for f in client.list_functions()]
    except (HostUnreachable, AgentAPIError):
        return []  # an agent that does not answer: the registrations alone decide
    finally:
        client.close()
