"""The fleet-wide task queue's members on their hosts (``FleetArgs.task_queue`` nats): the nats-server build shipped
content-addressed (a host that has this build gets nothing), its config written 0600 from natsconf's template, and
nats-server started under runtime_agent.supervisor, restarted only when its config or build changed.

The Fleet always ships the project's build (v2.15.2, scripts/build-nats-server.sh) rather than using a host's own
nats-server: Debian 12's (2.9.10) cannot fsync each write (no ``sync_interval``), and one build everywhere keeps
the cluster's members on one version."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from .._errors import FcProviderError
from .._model.natsconf import NatsMember
from . import commands as cmd
from . import pool as _pool
from .ssh import HostSpec


@functools.lru_cache(maxsize=4)
def _build(path: str, mtime_ns: int) -> tuple[bytes, str]:
    data = Path(path).read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:16]


def build_of(path: Path) -> tuple[bytes, str]:
    """The build's bytes and its short digest; a clear error when it was never built."""
    if not path.is_file():
        raise FcProviderError(f"task_queue: the nats-server build {path} does not exist; run "
                              f"scripts/build-nats-server.sh (scripts/setup.sh does) or set FC_NATS_SERVER")
    return _build(str(path), path.stat().st_mtime_ns)


def install_member(private_key: str, host: HostSpec, member: NatsMember, binary: Path) -> dict[str, Any]:
    """Ships the build if absent, writes the member's config and (re)starts nats-server when either changed.
    Returns {"binary": remote path, "restarted": bool}."""
    data, digest = build_of(binary)
    remote = cmd.nats_binary(digest)
    text = member.render()
    with _pool.session(host, private_key) as ssh:
        shipped = ssh.run(cmd.path_exists(remote), check=False).exit_status != 0
        if shipped:
            ssh.run(["mkdir", "-p", remote.rsplit("/", 1)[0]])
            ssh.put_bytes(data, remote, mode=0o755)
        current = ssh.run(["cat", cmd.NATS_CONFIG], check=False)
        changed = shipped or current.exit_status != 0 or current.stdout != text
        if changed:
            ssh.put_bytes(text.encode(), cmd.NATS_CONFIG, mode=0o600)
            ssh.run(cmd.stop_nats())  # a new config or build: nats-server starts again with it
        ssh.run(cmd.start_nats(remote))
    return {"binary": remote, "restarted": changed}


def retire_member(private_key: str, host: HostSpec) -> None:
    """A host that is no longer one of the queue's members (its Fleet went back to the local queue, or named other
    hosts): nats-server stopped, its config and stream files removed. The tasks those files held were the cluster's
    (3 replicas): the hosts that stay members keep them, and a queue given up whole has no more readers."""
    with _pool.session(host, private_key) as ssh:
        ssh.run(cmd.stop_nats())
        ssh.run(["rm", "-rf", cmd.NATS_CONFIG, cmd.NATS_STORE])
