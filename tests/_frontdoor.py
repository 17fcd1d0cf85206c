"""Shared by the front door's tests: serve a domain on a lab host with the provider's own edge-host operations,
send requests through it (HTTP through tests/_agent.post, so request signing applies at merge; HTTPS with SNI and
the test CA), and look at the HAProxy processes."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
from pathlib import Path
from typing import Any, Optional

import docker
from _agent import TEST_KEY, instance_containers, post

from fc_provider._model import frontdoor as fd
from fc_provider._model.custom_domain import CustomDomainModel
from fc_provider._remote import frontdoor as door
from fc_provider._remote import pool as _pool
from fc_provider._remote.signer import sign
from fc_provider._remote.ssh import HostSpec


class Edge:
    """One lab host as the front door, driven the way the CustomDomain resource drives it."""

    def __init__(self, lab_fleet: dict, name: str = "lab-1") -> None:
        self.hosts = {h["name"]: h for h in lab_fleet["hosts"]}
        host = self.hosts[name]
        self.spec = HostSpec(name, host["address"], int(host.get("port", 22)), lab_fleet["ssh_user"],
                             host["host_public_key"])
        self.key = Path(lab_fleet["ssh_private_key_path"]).read_text()
        self.address = host["address"]

    def fragment(self, domain: dict[str, Any], invoke_port: int = 9000) -> dict[str, Any]:
        return fd.fragment(CustomDomainModel.model_validate(domain), self.hosts, invoke_port)

    def serve(self, domain: dict[str, Any], invoke_port: int = 9000) -> str:
        model = CustomDomainModel.model_validate(domain)
        bundle = fd.pem_bundle(model.cert_config.model_dump()) if model.cert_config else None
        with _pool.session(self.spec, self.key) as ssh:
            return door.apply(ssh, model.domain_name, self.fragment(domain, invoke_port), bundle)

    def apply_raw(self, domain: str, fragment: Optional[dict[str, Any]]) -> str:
        with _pool.session(self.spec, self.key) as ssh:
            return door.apply(ssh, domain, fragment)

    def state(self) -> door.HostState:
        with _pool.session(self.spec, self.key) as ssh:
            return door.state(ssh)

    def run(self, argv: list[str], check: bool = True) -> str:
        with _pool.session(self.spec, self.key) as ssh:
            return ssh.run(argv, check=check).stdout

    def withdraw_everything(self) -> None:
        with _pool.session(self.spec, self.key) as ssh:
            ssh.run(door.stop())
            ssh.run(door.remove_all())

    def get(self, domain: str, path: str, body: bytes = b"", headers: Optional[dict[str, str]] = None,
            port: int = 80, signed: bool = False) -> tuple[int, dict[str, str], bytes]:
        """A POST to the domain through this edge host. A route goes to its function's HTTP trigger, whose authType
        applies: unsigned for an anonymous one, ``signed`` (the test key, over the request as sent: the front door
        changes neither Host nor the path the agent verifies) for a ``function`` one. The invoke API's own paths are
        always signed. Headers that already carry a signature (the pass-through test) are sent as given."""
        url = f"http://{self.address}:{port}{path}"
        headers = {"Host": domain, **(headers or {})}
        if any(k.lower() in ("authorization", "x-acs-date") for k in headers):
            return post(url, body, headers, key=None)
        if signed or path.startswith(fd.INVOKE_PREFIX):
            headers = sign(TEST_KEY, "POST", url, body, headers)
        return post(url, body, headers, key=None)


class _Pinned(http.client.HTTPSConnection):
    """HTTPS to ``domain`` (SNI and certificate name) at another address, as DNS pointing at the edge would."""

    def __init__(self, address: str, domain: str, port: int, context: ssl.SSLContext) -> None:
        super().__init__(domain, port, context=context, timeout=30)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def https_post(address: str, domain: str, path: str, ca_file: Path, body: bytes = b"",
               max_version: Optional[ssl.TLSVersion] = None, port: int = 443) -> tuple[int, bytes, str]:
    """An unsigned POST over HTTPS (routes to anonymous HTTP triggers are public)."""
    headers: dict[str, str] = {}
    context = ssl.create_default_context(cafile=str(ca_file))
    if max_version is not None:
        context.maximum_version = max_version
    conn = _Pinned(address, domain, port, context)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), conn.sock.version()  # type: ignore[union-attr]
    finally:
        conn.close()


# What a built-in runtime's function gets: FC's HTTP trigger event through a route, the raw body through the invoke
# API. BODY gives the body in both cases.
BODY = ("import base64, json\n"
        "def body_of(event):\n"
        "    try:\n"
        "        http = json.loads(event)\n"
        "    except ValueError:\n"
        "        http = None\n"
        "    if not (isinstance(http, dict) and 'rawPath' in http):\n"
        "        return None, event.decode()\n"
        "    text = base64.b64decode(http['body']).decode() if http['isBase64Encoded'] else http['body']\n"
        "    return http, text\n")


def echo_function(tag: str) -> str:
    """``tag:body``; through an HTTP trigger also the path and query the function saw (x-path, x-query)."""
    return BODY + (f"def handler(event, context):\n"
                   f"    http, text = body_of(event)\n"
                   f"    if http is None:\n"
                   f"        return {tag!r} + ':' + text\n"
                   f"    return {{'statusCode': 200, 'body': {tag!r} + ':' + text, 'headers': {{\n"
                   f"        'x-path': http['rawPath'], 'x-query': json.dumps(http['queryParameters'])}}}}\n")


# Holds its request until the test releases it (release_held: a file in its container's /tmp), or for the seconds
# its body says: in flight for as long as a reload takes, however long that is on a loaded machine, not a second more.
RELEASE = "/tmp/fc-release"
HELD_FUNCTION = BODY + ("import os, time\n"
                        "def handler(event, context):\n"
                        "    seconds = body_of(event)[1]\n"
                        "    deadline = time.time() + float(seconds or '0')\n"
                        f"    while time.time() < deadline and not os.path.exists({RELEASE!r}):\n"
                        "        time.sleep(0.05)\n"
                        f"    if os.path.exists({RELEASE!r}):\n"
                        f"        os.remove({RELEASE!r})\n"
                        "        return 'released'\n"
                        "    return 'held ' + seconds\n")


def release_held(lab: Any, hosts: list[str], function: str) -> None:
    """Lets every held request of ``function`` (a HELD_FUNCTION) answer, on whichever host it is."""
    for host in hosts:
        client = lab.docker_client(host)
        try:
            for container in instance_containers(client, host, function).values():
                try:
                    container.exec_run(["touch", RELEASE])
                except docker.errors.APIError:
                    pass  # a hibernated (paused) instance holds no request
        finally:
            client.close()


# A stand-in for a host's invoke port that tells what reached it: answers /healthz, and echoes each request.
CAPTURE_SERVER = r"""
import json, socketserver, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def _answer(self, body):
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/healthz":
            return self._answer(b"ok")
        self.do_POST()
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        print(self.command, flush=True)
        if RUDE:  # closes the connection without an answer: HAProxy's "empty-response"
            self.close_connection = True
            return
        self._answer(json.dumps({"method": self.command, "target": self.path, "body": body.decode(),
                                 "headers": [[k.lower(), v] for k, v in self.headers.items()]}).encode())

class Server(ThreadingHTTPServer):
    def server_bind(self):  # without HTTPServer's getfqdn(address): a reverse DNS lookup that times out in the lab
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

RUDE = sys.argv[3:] == ["rude"]
Server((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
"""


def headers_of(answer: bytes) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for key, value in json.loads(answer)["headers"]:
        seen.setdefault(key, []).append(value)
    return seen


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


_SHOW_STAT = ("import socket\n"
              "s = socket.socket(socket.AF_UNIX)\n"
              f"s.connect({fd.STATE_DIR + '/admin.sock'!r})\n"
              "s.sendall(b'show stat\\n')\n"
              "data = b''\n"
              "while True:\n"
              "    chunk = s.recv(65536)\n"
              "    if not chunk:\n"
              "        break\n"
              "    data += chunk\n"
              "print(data.decode())\n")


def stats(edge: Edge) -> dict[tuple[str, str], dict[str, str]]:
    """(proxy, server or FRONTEND/BACKEND) -> HAProxy's stats row, from its admin socket on the edge host."""
    lines = edge.run(["python3", "-c", _SHOW_STAT]).splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
    return {(r["pxname"], r["svname"]): r for r in rows}


def server_status(edge: Edge) -> dict[tuple[str, str], str]:
    """(backend, server) -> HAProxy's status (UP, DOWN, ...)."""
    return {k: r["status"] for k, r in stats(edge).items() if k[1] not in ("FRONTEND", "BACKEND")}


def listens(lab: Any, host: str, port: int = 9000) -> bool:
    """Whether anything on lab host ``host`` listens on ``port`` (ss in its network namespace)."""
    out = lab.run(host, ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return bool(out.strip())


def gone(pid: int) -> bool:
    """The process has exited (a zombie or no more)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True
