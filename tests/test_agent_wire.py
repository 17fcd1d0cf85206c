"""The invoke API's lean HTTP/1.1 wire (runtime_agent/wire.py) against real clients and servers: keep-alive,
chunked and 100-continue request bodies, malformed requests answered in FC's shape, and instance servers that
answer HTTP/1.0 without a length (body until close) or with chunked bodies."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Iterator

import pytest
from _agent import SERVER_BASE, deploy, install, post, signed_lines

from fc_lab import Lab
from fc_provider._remote import fleetops as ops

ECHO = "def handler(event, context):\n    return event\n"


@pytest.fixture(scope="module")
def agent_conn(lab: Lab, lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    conn = install(lab_fleet, 0)
    yield conn
    ops.uninstall_agent(conn, conn.hosts[0])


def _exchange(sock: socket.socket, request: bytes, *, expect_continue: bool = False) -> tuple[int, dict, bytes]:
    """Sends raw bytes; reads one response with a content-length (what the agent always sends)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    if expect_continue:
        assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), data[:80]
        data = data[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def test_one_connection_carries_plain_chunked_and_continued_requests_then_errors(
        agent_conn: ops.FleetConnection, tmp_path: Path) -> None:
    deploy(agent_conn, tmp_path, "echo", ECHO)
    path = "/2023-03-30/functions/echo/invocations"
    host = agent_conn.hosts[0].address
    with socket.create_connection((host, agent_conn.invoke_port), timeout=30) as sock:
        status, headers, body = _exchange(sock, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                                f"{signed_lines('POST', path, b'plain')}\r\nplain".encode())
        assert status == 200 and body == b"plain" and headers["x-fc-request-id"]
        qualified = f"{path}?qualifier=LATEST"
        status, _, body = _exchange(sock, f"POST {qualified} HTTP/1.1\r\nHost: x\r\n"
                                          f"{signed_lines('POST', qualified, b'chunked')}"
                                          f"Transfer-Encoding: chunked\r\n\r\n3\r\nchu\r\n4\r\nnked\r\n0\r\n\r\n".encode())
        assert status == 200 and body == b"chunked"
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nExpect: 100-continue\r\n"
                     f"{signed_lines('POST', path, b'continued')}\r\n".encode())
        status, _, body = _exchange(sock, b"continued", expect_continue=True)
        assert status == 200 and body == b"continued"
        status, headers, body = _exchange(sock, b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 400 and json.loads(body)["Code"] == "PathNotSupported"
        nope = "/2023-03-30/functions/nope/invocations"
        status, headers, body = _exchange(sock, f"POST {nope} HTTP/1.1\r\n{signed_lines('POST', nope)}"
                                                "x-fc-request-id: mine-1\r\nContent-Length: 0\r\n\r\n".encode())
        assert status == 404 and json.loads(body) == {
            "Code": "FunctionNotFound", "RequestId": "mine-1",
            "Message": f"function nope does not exist on host {agent_conn.hosts[0].name}"}
        status, headers, body = _exchange(sock, b"NONSENSE\r\nbroken header line\r\n\r\n")
        assert status == 400 and json.loads(body)["Code"] == "InvalidArgument"
        assert headers["connection"] == "close" and sock.recv(10) == b""  # the agent closed it


UNTIL_CLOSE_SERVER = SERVER_BASE + """
class Handler(BaseHTTPRequestHandler):  # HTTP/1.0, no content-length: the body ends when the connection does
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def do_POST(self):
        event = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"until-close:" + event)

ThreadingHTTPServer(("0.0.0.0", int(os.environ["FC_SERVER_PORT"])), Handler).serve_forever()
"""

CHUNKED_SERVER = SERVER_BASE + """
class Handler(Base):
    def do_GET(self):
        self._reply(200, b"up")

    def do_POST(self):
        event = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for part in (b"chunked:", event):
            self.wfile.write(b"%x\\r\\n%s\\r\\n" % (len(part), part))
        self.wfile.write(b"0\\r\\n\\r\\n")

ThreadingHTTPServer(("0.0.0.0", int(os.environ["FC_SERVER_PORT"])), Handler).serve_forever()
"""


@pytest.mark.parametrize(("server", "prefix"), [(UNTIL_CLOSE_SERVER, b"until-close:"), (CHUNKED_SERVER, b"chunked:")])
def test_instance_servers_may_end_bodies_by_closing_or_by_chunks(agent_conn: ops.FleetConnection, tmp_path: Path,
                                                                server: str, prefix: bytes) -> None:
    name = "web-" + prefix.decode().strip(":")
    url = deploy(agent_conn, tmp_path, name, server, runtime="custom.debian12", timeout=10,
                 custom_runtime_config={"command": ["python3", "index.py"], "port": 9000})
    answers = [post(url, f"n{i}".encode()) for i in range(3)]  # a closed connection is replaced, not an error
    assert [a[2] for a in answers] == [prefix + f"n{i}".encode() for i in range(3)]
    assert all(a[0] == 200 and "x-fc-error-type" not in a[1] for a in answers)
    assert len({a[1]["x-fc-instance-id"] for a in answers}) == 1
