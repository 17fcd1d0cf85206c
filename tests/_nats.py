"""A JetStream cluster on lab hosts, for the tests and the benchmark of the fleet-wide task queue: one nats-server
per host (the project's build, scripts/build-nats-server.sh, v2.15.2), in the host's own namespaces, configured by
``fc_provider._model.natsconf`` (the files the Fleet writes, ``sync_interval: always``), started in the background
and killed by pid afterwards."""

from __future__ import annotations

import functools
import secrets
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from fc_lab import Lab
from fc_provider._model.natsconf import CLIENT_PORT, members

FOLDER = "/var/lib/fc-agent/nats-test"  # per host: the hosts share the rest of /var/lib
REPO = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=1)
def nats_server() -> str:
    """The cached nats-server build (lab hosts share the machine's files outside their private folders)."""
    return subprocess.run(["bash", str(REPO / "scripts" / "build-nats-server.sh")], check=True, capture_output=True,
                          text=True).stdout.strip()


@dataclass
class Member:
    name: str
    address: str
    pid: int

    @property
    def url(self) -> str:
        return f"nats://{self.address}:{CLIENT_PORT}"


@dataclass
class Cluster:
    lab: Lab
    user: str
    password: str
    members: dict[str, Member]

    def servers(self, *names: str) -> list[str]:
        return [self.members[n].url for n in (names or self.members)]

    def kill(self, name: str) -> None:
        """kill -9 of that host's nats-server (what a host whose power went would do to it)."""
        _kill(self.members[name].pid)

    def settings(self, **extra: object) -> dict:
        """The agent config's ``task_queue`` for this cluster."""
        return {"nats": {"servers": self.servers(), "user": self.user, "password": self.password, **extra}}


def _kill(pid: int) -> None:
    try:  # lab hosts share the PID namespace: kill only what really is the nats-server started here
        if b"nats-server" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
        import os

        os.kill(pid, 9)
    except (OSError, ProcessLookupError):
        pass


def _wait_listening(address: str, port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((address, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server on {address}:{port} did not listen within {timeout:.0f}s")
            time.sleep(0.1)


@contextmanager
def cluster(lab: Lab, names: list[str]) -> Iterator[Cluster]:
    hosts = {h["name"]: h["address"] for h in lab.fleet()["hosts"]}
    password = secrets.token_urlsafe(24)
    configs = members([(n, hosts[n]) for n in names], password, store_dir=f"{FOLDER}/jetstream", sync_always=True)
    binary = nats_server()
    started: dict[str, Member] = {}
    for name in names:  # a member left by another test would answer in ours' place, with another password
        try:
            socket.create_connection((hosts[name], CLIENT_PORT), timeout=1).close()
        except OSError:
            continue
        raise RuntimeError(f"something already listens on {name}'s NATS port {CLIENT_PORT}: a queue member left "
                           "running by an earlier test or Fleet")
    try:
        for config in configs:
            name = config.server_name
            lab.run(name, ["sh", "-c", f"rm -rf {FOLDER} && mkdir -p -m 700 {FOLDER} && umask 077 && "
                                       f"cat > {FOLDER}/nats.conf"], input=config.render(), text=True, check=True)
            out = lab.run(name, ["sh", "-c", f"setsid {binary} -c {FOLDER}/nats.conf > {FOLDER}/log 2>&1 "
                                             f"< /dev/null & echo $!"], capture_output=True, text=True, check=True)
            started[name] = Member(name, hosts[name], int(out.stdout.strip()))
        for member in started.values():
            _wait_listening(member.address, CLIENT_PORT)
        yield Cluster(lab, configs[0].user, password, started)
    finally:
        for member in started.values():
            _kill(member.pid)
        for name in started:
            lab.run(name, ["rm", "-rf", FOLDER])
