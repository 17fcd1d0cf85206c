"""Shared by the agent's test files: install the agent on one lab host, deploy code or a container function to it,
invoke it over HTTP, and the small web servers the custom-runtime tests run."""

from __future__ import annotations

import dataclasses
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from fc_provider._model.archive import pack_code
from fc_provider._remote import fleetops as ops
from fc_provider._remote.commands import code_archive
from fc_provider._remote.signer import Credentials, sign

# The key every test invocation signs with (install() puts it on the host): every action on every function.
TEST_KEY = Credentials("LTAItestkey" + secrets.token_hex(6), secrets.token_urlsafe(24))
FULL_POLICY = {"actions": ["fc:*"], "resources": ["*"]}


def install(lab_fleet: dict, index: int = 0, **settings: Any) -> ops.FleetConnection:
    """The agent installed on lab host ``index`` by the provider's own fleet operations."""
    conn = ops.FleetConnection.from_dict({
        "hosts": [{**lab_fleet["hosts"][index], "user": lab_fleet["ssh_user"]}],
        "private_key": Path(lab_fleet["ssh_private_key_path"]).read_text(),
        "token": secrets.token_urlsafe(16),
    })
    info = ops.install_agent(conn, conn.hosts[0], {"idle_timeout_seconds": 300, **settings})
    # An agent already on the host keeps its token (other users hold it): use the one it has.
    conn = dataclasses.replace(conn, token=info["token"])
    grant(conn)
    return conn


def grant(conn: ops.FleetConnection, key: Credentials = TEST_KEY, policy: dict | None = None) -> Credentials:
    """Puts ``key`` on every host of ``conn`` (the agent's control API), as an fc.AccessKey would."""
    for host in conn.hosts:
        with ops.agent_session(conn, host) as (_ssh, agent):
            agent.put_access_key(key.access_key_id, key.access_key_secret, policy or FULL_POLICY)
    return key


def grant_lab(lab: Any, key: Credentials = TEST_KEY, policy: dict | None = None) -> Credentials:
    """Puts ``key`` on every lab host whose agent runs (installed by a Pulumi program), through its control API."""
    from _fleet_agents import agent  # noqa: PLC0415 - only the Pulumi tests need it

    fleet = lab.fleet()
    for host in fleet["hosts"]:
        with agent(lab, fleet, host["name"]) as (_ssh, client):
            client.put_access_key(key.access_key_id, key.access_key_secret, policy or FULL_POLICY)
    return key


def stack_key(stack: Any) -> Credentials:
    """The key a stack's program exports as access_key_id / access_key_secret."""
    outputs = stack.outputs(show_secrets=True)
    return Credentials(outputs["access_key_id"], outputs["access_key_secret"])


def invoke_url(conn: ops.FleetConnection, name: str) -> str:
    return f"http://{conn.hosts[0].address}:{conn.invoke_port}/2023-03-30/functions/{name}/invocations"


def deploy(conn: ops.FleetConnection, tmp: Path, name: str, source: str, *, filename: str = "index.py",
           **spec: object) -> str:
    """``source`` as ``filename`` (index.py; index.js for Node.js) in a code package, deployed as function ``name``
    (python3.11 unless ``spec`` says otherwise); returns its invoke URL."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / filename).write_text(source)
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


def post(url: str, body: bytes = b"", headers: dict[str, str] | None = None, *,
         key: Credentials | None = TEST_KEY, method: str = "POST", qualifier: str | None = None):
    """One invoke-API request, signed with ``key`` (None: unsigned), ``qualifier``: FC's ``?qualifier=`` (a version
    id or an alias); returns (status, headers, body)."""
    if qualifier is not None:
        url = f"{url}?{urllib.parse.urlencode({'qualifier': qualifier})}"
    headers = dict(headers or {})
    if key is not None:
        headers = sign(key, method, url, body, headers)
    req = urllib.request.Request(url, data=body if method == "POST" else None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def signed_lines(method: str, target: str, body: bytes = b"", key: Credentials = TEST_KEY) -> str:
    """The signature headers of a raw request (``target`` as sent, query included), as "name: value\\r\\n" lines to
    put in a hand-written head: for tests that speak raw HTTP to the invoke port."""
    return "".join(f"{k}: {v}\r\n" for k, v in sign(key, method, f"http://x{target}", body).items())


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


# A container of an instance is named fc-<instance id> whatever its birth, and an instance id is
# <function>-<12 hex>: a stem cell (named fc-cell.<id> while idle) is renamed so at its hand-over, in the background.
# The labels fc.function / fc.instance are only on containers started for an instance (Docker cannot relabel one).
INSTANCE_NAME = re.compile(r"^fc-(?P<instance>(?P<function>[A-Za-z0-9_-]+)-[0-9a-f]{12})$")


def instance_containers(client: Any, host: str, function: str | None = None, *, all: bool = False) -> dict:
    """The containers of ``host``'s instances (of ``function``; None: of any), by instance id, whatever their birth
    (idle stem cells are no instance's). ``all``: stopped ones too."""
    found = {}
    for container in client.containers.list(all=all, filters={"label": f"fc.agent={host}"}):
        match = INSTANCE_NAME.match(container.name)
        if match and (function is None or match["function"] == function):
            found[match["instance"]] = container
    return found


def container_of(lab: Any, conn: ops.FleetConnection, instance_id: str) -> Any:
    """The container of one instance, by the id the agent's state holds for it (at once, whatever its birth)."""
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        (container_id,) = [i["container_id"] for i in agent.instances() if i["instance_id"] == instance_id]
    client = lab.docker_client(conn.hosts[0].name)
    try:
        return client.containers.get(container_id)
    finally:
        client.close()


def burst(lab: Any, conn: ops.FleetConnection, url: str, requests: int, function: str | None) -> tuple[list, int]:
    """Sends ``requests`` concurrent invocations; returns their results and the peak number of instance containers
    (of ``function``; None: of any function) a sampler saw meanwhile (the sampler stops when the burst ends)."""
    host = conn.hosts[0].name
    client = lab.docker_client(host)
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], len(instance_containers(client, host, function)))
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


def post_async(url: str, body: bytes = b"", task_id: str | None = None, headers: dict[str, str] | None = None):
    """An asynchronous invocation (x-fc-invocation-type: Async), through ``post`` like every invoke-API call."""
    extra = {"x-fc-invocation-type": "Async", **(headers or {})}
    if task_id is not None:
        extra["x-fc-async-task-id"] = task_id
    return post(url, body, extra)


def async_config(conn: ops.FleetConnection, function: str, **config: Any) -> dict:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        return agent.put_async_config(function, config)


def task(conn: ops.FleetConnection, function: str, task_id: str) -> dict:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        return agent.get_task(function, task_id)


def wait_task(conn: ops.FleetConnection, function: str, task_id: str, *statuses: str, timeout: float = 60) -> dict:
    """The task once its status is one of ``statuses``."""
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        return wait_for(lambda: (t := agent.get_task(function, task_id))["status"] in statuses and t,
                        f"task {task_id} of {function} to reach {'/'.join(statuses)}", timeout)
