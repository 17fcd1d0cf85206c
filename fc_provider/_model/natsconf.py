"""The nats-server configuration of one fleet host in the JetStream cluster of the fleet-wide task queue
(``FleetArgs.task_queue = fc.NatsTaskQueueArgs(...)``; docs/architecture.md "A fleet-wide queue"): client and
cluster ports on the host's own address, JetStream's file store, routes to every other member, and one
user/password for both clients and routes (never anonymous); and where the nats-server build the Fleet ships is.

Durability: Debian 12's nats-server (2.9.10) has no ``sync_interval``; it acknowledges a publish to an R3 stream
once a majority of members has it (written, not fsynced). So the project builds nats-server v2.15.2
(scripts/build-nats-server.sh) and the Fleet ships that build and writes ``sync_interval: always`` (``sync_always``):
every member fsyncs each write before it acknowledges it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

CLIENT_PORT, CLUSTER_PORT = 4222, 6222
NATS_SERVER_VERSION = "v2.15.2"
NATS_USER = "fc-agent"


def nats_server_build() -> Path:
    """The nats-server the Fleet ships: $FC_NATS_SERVER, else the build scripts/setup.sh caches
    (``$FC_CACHE_DIR/nats-server-v2.15.2/nats-server``, FC_CACHE_DIR defaulting to ~/.cache/fc-provider)."""
    if os.environ.get("FC_NATS_SERVER"):
        return Path(os.environ["FC_NATS_SERVER"])
    cache = Path(os.environ.get("FC_CACHE_DIR") or Path.home() / ".cache" / "fc-provider")
    return cache / f"nats-server-{NATS_SERVER_VERSION}" / "nats-server"
_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # names and addresses go into a quoted config string
_TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).with_name("templates"))),
                                undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


@dataclass(frozen=True)
class NatsMember:
    server_name: str
    address: str
    peers: tuple[str, ...]  # the other members' addresses
    password: str
    store_dir: str = "/var/lib/fc-agent/jetstream"
    user: str = "fc-agent"
    cluster_name: str = "fc-tasks"
    client_port: int = CLIENT_PORT
    cluster_port: int = CLUSTER_PORT
    max_memory_bytes: int = 64 * 1024 * 1024
    max_file_bytes: int = 4 * 1024 * 1024 * 1024
    sync_always: bool = False

    def render(self) -> str:
        for name, value in (("server_name", self.server_name), ("address", self.address), ("user", self.user),
                            ("cluster_name", self.cluster_name), *(("peers", p) for p in self.peers)):
            if not _SAFE.match(value):
                raise ValueError(f"nats {name} {value[:80]!r}: only letters, digits, '.', '_' and '-' (1-64)")
        if not re.fullmatch(r"[A-Za-z0-9_-]{16,128}", self.password):
            raise ValueError("nats password: 16-128 letters, digits, '_' or '-' (it is written into routes URLs)")
        if not re.fullmatch(r"/[A-Za-z0-9._/-]+", self.store_dir):
            raise ValueError(f"nats store_dir {self.store_dir[:80]!r}: an absolute path of letters, digits, ._/-")
        return _TEMPLATES.get_template("nats-server.conf.j2").render(**{
            k: getattr(self, k) for k in ("server_name", "address", "peers", "password", "store_dir", "user",
                                          "cluster_name", "client_port", "cluster_port", "max_memory_bytes",
                                          "max_file_bytes", "sync_always")})


def members(hosts: list[tuple[str, str]], password: str, **options) -> list[NatsMember]:
    """One member per (name, address), each routed to all the others."""
    addresses = [address for _, address in hosts]
    return [NatsMember(name, address, tuple(a for a in addresses if a != address), password, **options)
            for name, address in hosts]
