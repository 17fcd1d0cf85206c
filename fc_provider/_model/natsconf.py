"""The nats-server configuration of one fleet host in the JetStream cluster that an opt-in fleet-wide task queue
would use (issue 12, not wired yet; see docs/architecture.md "A fleet-wide queue"): client and cluster ports on
the host's own address, JetStream's file store, routes to every other member, and one user/password for both
clients and routes (never anonymous).

Durability: Debian 12's nats-server (2.9.10) has no ``sync_interval``; it acknowledges a publish to an R3 stream
once a majority of members has it (written, not fsynced), so an accepted event survives a ``kill -9`` of any
member and the loss of one whole host, but not a power cut of a majority at once. ``sync_always`` writes
``sync_interval: always`` (fsync before each ack) for nats-server 2.10 and later."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

CLIENT_PORT, CLUSTER_PORT = 4222, 6222
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
