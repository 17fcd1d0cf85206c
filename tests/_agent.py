"""Shared by the agent's test files: install the agent on one lab host, deploy code or a container function to it,
invoke it over HTTP, and the small web servers the custom-runtime tests run."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from fc_provider._model.archive import pack_code
from fc_provider._remote import fleetops as ops
from fc_provider._remote.commands import code_archive


def install(lab_fleet: dict, index: int = 0, **settings: Any) -> ops.FleetConnection:
    """The agent installed on lab host ``index`` by the provider's own fleet operations."""
    conn = ops.FleetConnection.from_dict({
        "hosts": [{**lab_fleet["hosts"][index], "user": lab_fleet["ssh_user"]}],
        "private_key": Path(lab_fleet["ssh_private_key_path"]).read_text(),
        "token": secrets.token_urlsafe(16),
    })
    info = ops.install_agent(conn, conn.hosts[0], {"idle_timeout_seconds": 300, **settings})
    # An agent already on the host keeps its token (other users hold it): use the one it has.
    return dataclasses.replace(conn, token=info["token"])


def invoke_url(conn: ops.FleetConnection, name: str) -> str:
    return f"http://{conn.hosts[0].address}:{conn.invoke_port}/2023-03-30/functions/{name}/invocations"


def deploy(conn: ops.FleetConnection, tmp: Path, name: str, source: str, **spec: object) -> str:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "index.py").write_text(source)
    package = pack_code(tmp)
    with ops.agent_session(conn, conn.hosts[0]) as (ssh, agent):
        ssh.put_bytes(package.data, code_archive(package.checksum))
        agent.put_function(name, {"runtime": "python3.11", "handler": "index.handler", "memory_size": 128,
                                  "timeout": 3, **spec, "code_checksum": package.checksum})
    return invoke_url(conn, name)


def deploy_container(conn: ops.FleetConnection, name: str, **spec: object) -> str:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        agent.put_function(name, {"runtime": "custom-container", "memory_size": 128, "timeout": 10, **spec})
    return invoke_url(conn, name)


def post(url: str, body: bytes = b"", headers: dict[str, str] | None = None):
    req = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def http_trigger(conn: ops.FleetConnection, label: str, method: str = "GET", path: str = "/", body: bytes = b"",
                 headers: dict[str, str] | None = None, *, by_path: bool = False, host_index: int = 0
                 ) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request to an HTTP trigger (the host-name URL, or the path one with ``by_path``), redirects not
    followed; returns the status, the header pairs (lower-case names, repeats kept) and the body."""
    import http.client
    host = conn.hosts[host_index]
    client = http.client.HTTPConnection(host.address, conn.invoke_port, timeout=60)
    try:
        target = f"/_t/{label}{path}" if by_path else path
        client.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        client.putheader("Host", f"{host.address}:{conn.invoke_port}" if by_path else f"{label}.fc.local")
        for key, value in (headers or {}).items():
            client.putheader(key, value)
        client.putheader("Content-Length", str(len(body)))
        client.endheaders(body)
        resp = client.getresponse()
        return resp.status, [(k.lower(), v) for k, v in resp.getheaders()], resp.read()
    finally:
        client.close()


def instances(conn: ops.FleetConnection, function: str) -> list[dict]:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        return [i for i in agent.instances() if i["function_name"] == function]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def burst(lab: Any, conn: ops.FleetConnection, url: str, requests: int, label: str) -> tuple[list, int]:
    """Sends ``requests`` concurrent invocations; returns their results and the peak number of containers with
    ``label`` a sampler saw meanwhile (the sampler stops when the burst ends)."""
    client = lab.docker_client(conn.hosts[0].name)
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], len(client.containers.list(filters={"label": label})))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=requests) as pool:
            results = list(pool.map(lambda _: post(url, b"x"), range(requests)))
    finally:
        stop.set()
        sampler.join()
        client.close()
    return results, peak[0]


# The start of each test server: a keep-alive handler with a quiet log and a one-call reply.
SERVER_BASE = """
import json, os, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Base(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _reply(self, status, body):
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
"""

WEB_SERVER = SERVER_BASE + """
lock = threading.Lock()
state = {"now": 0, "peak": 0}

class Handler(Base):

    def do_GET(self):
        self._reply(200, b"up")

    def do_POST(self):
        event = self.rfile.read(int(self.headers.get("content-length") or 0))
        if event == b"fail":
            return self._reply(500, b"server says no")
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.5)
        with lock:
            state["now"] -= 1
            peak = state["peak"]
        self._reply(200, json.dumps({"peak": peak, "pid": os.getpid()}).encode())

ThreadingHTTPServer(("0.0.0.0", int(os.environ["FC_SERVER_PORT"])), Handler).serve_forever()
"""



SICKENING_SERVER = SERVER_BASE + """
sick = []

class Handler(Base):

    def do_GET(self):
        self._reply(503 if (sick and self.path == "/health") else 200, b"")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        sick.append(1)
        self._reply(200, b"now sick")

ThreadingHTTPServer(("0.0.0.0", int(os.environ["FC_SERVER_PORT"])), Handler).serve_forever()
"""
