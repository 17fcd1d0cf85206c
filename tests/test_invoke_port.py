"""The invoke port against hostile HTTP (runtime_agent/wire.py, api/invoke.py): each framing attack is answered 400
and the connection closed, so nothing after a bad frame is read as a request; a head must arrive in time and an
idle connection is closed; past max_connections new connections get 503 at once while an open connection keeps
being served, and the agent's threads and memory come back after a flood of idle connections."""

from __future__ import annotations

import json
import select
import socket
from pathlib import Path
from typing import Iterator

import pytest
from _agent import deploy, install, signed_lines, wait_for

from fc_lab import Lab
from fc_provider._remote import fleetops as ops

ECHO = "def handler(event, context):\n    return b'echo:' + event\n"
PATH = "/2023-03-30/functions/port-echo/invocations"
HEAD_TIMEOUT, KEEPALIVE, CAP = 3, 6, 40
FLOOD = 100


@pytest.fixture(scope="module")
def agent_conn(lab: Lab, lab_fleet: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ops.FleetConnection]:
    conn = install(lab_fleet, 0, head_timeout_seconds=HEAD_TIMEOUT, keepalive_timeout_seconds=KEEPALIVE,
                   max_connections=CAP)
    deploy(conn, tmp_path_factory.mktemp("port"), "port-echo", ECHO)
    yield conn
    ops.uninstall_agent(conn, conn.hosts[0])


def connect(conn: ops.FleetConnection) -> socket.socket:
    return socket.create_connection((conn.hosts[0].address, conn.invoke_port), timeout=30)


def signed_request(body: bytes = b"ok", extra: str = "") -> bytes:
    return (f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}"
            f"{signed_lines('POST', PATH, body)}\r\n").encode() + body


def read_all(sock: socket.socket) -> bytes:
    """Everything the agent sends until it closes the connection (the socket's 30 s timeout bounds the wait)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def one_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), body


ATTACKS = {
    "negative content-length": f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "signed content-length": f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
    "two content-lengths": f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
    "length and chunked": f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
                          "\r\n0\r\n\r\n",
    "gzip transfer-encoding": f"POST {PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "negative chunk size": f"POST {PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n",
    "0x chunk size": f"POST {PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    "underscore chunk size": f"POST {PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n",
    "chunk without crlf": f"POST {PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
    "space before colon": f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n",
    "folded header": f"POST {PATH} HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Content-Length: 0\r\n\r\n",
    "bad version": f"POST {PATH} HTTP/2.7\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    "70 KB head in one write": f"POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 70_000}\r\nContent-Length: 0\r\n\r\n",
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_framing_attacks_get_400_and_the_connection_closed(agent_conn: ops.FleetConnection, attack: str) -> None:
    # A valid request pipelined behind the attack must never be served: the connection closes after the 400.
    with connect(agent_conn) as sock:
        sock.sendall(ATTACKS[attack].encode() + signed_request(b"smuggled"))
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"connection: close" in answer.split(b"\r\n\r\n")[0]
    assert answer.count(b"HTTP/1.1 ") == 1 and b"smuggled" not in answer, answer[:400]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["Code"] == "InvalidArgument"


def test_a_big_head_sent_in_pieces_is_refused(agent_conn: ops.FleetConnection) -> None:
    with connect(agent_conn) as sock:
        sock.sendall(f"POST {PATH} HTTP/1.1\r\nHost: x\r\n".encode())
        for _ in range(8):
            try:
                sock.sendall(b"X-Pad: " + b"b" * 9000 + b"\r\n")
            except OSError:
                break  # the agent already answered and closed
        assert read_all(sock).startswith(b"HTTP/1.1 400 ")


def test_a_head_that_does_not_arrive_in_time_is_refused(agent_conn: ops.FleetConnection) -> None:
    with connect(agent_conn) as sock:
        sock.sendall(f"POST {PATH} HTTP/1.1\r\nHost: x\r\n".encode())  # and then nothing
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"did not arrive within" in answer, answer[:300]
    with connect(agent_conn) as sock:  # a connection that never sends a byte is closed too, without an answer
        assert read_all(sock) == b""


def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout(agent_conn: ops.FleetConnection) -> None:
    with connect(agent_conn) as sock:
        sock.sendall(signed_request(b"first"))
        assert one_response(sock) == (200, b"echo:first")
        assert read_all(sock) == b""  # closed by the agent, within the socket's 30 s bound


def agent_status(lab: Lab, conn: ops.FleetConnection) -> dict[str, int]:
    pid = lab.run(conn.hosts[0].name, ["cat", "/var/lib/fc-agent/agent.pid"], capture_output=True, text=True,
                  check=True).stdout.strip()
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {"threads": int(fields["Threads"]), "rss_kb": int(fields["VmRSS"].split()[0])}


def test_a_flood_of_idle_connections_is_capped_and_the_agent_recovers(agent_conn: ops.FleetConnection,
                                                                      lab: Lab) -> None:
    kept = connect(agent_conn)  # an existing client, kept alive through the flood
    kept.sendall(signed_request(b"before"))
    assert one_response(kept) == (200, b"echo:before")
    before = agent_status(lab, agent_conn)
    flood = [connect(agent_conn) for _ in range(FLOOD)]
    try:
        # Every connection is either held by a thread (silent) or refused at once (503, then closed).
        wait_for(lambda: agent_status(lab, agent_conn)["threads"] >= before["threads"] + CAP - 1,
                 "the agent to hold CAP connections", timeout=60)
        during = agent_status(lab, agent_conn)
        assert during["threads"] <= before["threads"] + CAP  # the cap bounds the threads
        kept.sendall(signed_request(b"during"))
        assert one_response(kept) == (200, b"echo:during")
        # Each flood connection ends one of two ways: refused at once (503), or held until the head timeout (EOF).
        first_bytes: dict[socket.socket, bytes] = {}
        while len(first_bytes) < FLOOD:
            readable, _, _ = select.select([s for s in flood if s not in first_bytes], [], [], 30)
            assert readable, "a flood connection neither refused nor closed within 30 s"
            for sock in readable:
                first_bytes[sock] = sock.recv(65536)
        refused = sum(1 for data in first_bytes.values() if data.startswith(b"HTTP/1.1 503 "))
        assert refused == FLOOD - (CAP - 1) and b"TooManyConnections" in max(first_bytes.values()), refused
    finally:
        for s in flood:
            s.close()
    kept.sendall(signed_request(b"after"))
    assert one_response(kept) == (200, b"echo:after")
    kept.close()
    after = wait_for(lambda: (s := agent_status(lab, agent_conn))["threads"] <= before["threads"] and s,
                     "the flood's threads to end", timeout=60)
    assert after["rss_kb"] < before["rss_kb"] + 30 * 1024, (before, after)
    with connect(agent_conn) as sock:  # and new clients are served again
        sock.sendall(signed_request(b"new"))
        assert one_response(sock) == (200, b"echo:new")
