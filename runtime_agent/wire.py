"""A lean HTTP/1.1 wire for the warm path: one buffered socket, heads parsed with ``bytes.split``, each message
written with one ``sendall``.

Why not ``http.server``/``http.client``: they parse every head through the ``email`` package and write heads and
bodies in separate calls; on a no-op invocation that was most of the agent's added latency (see
docs/performance.md). The invoke API's server side and the agent's keep-alive connections to instances both use
this module; the control API keeps ``http.server`` (rare calls, many routes).

Supported: Content-Length and chunked bodies, bodies delimited by the connection's close (responses only),
``Expect: 100-continue``, keep-alive and ``Connection: close``. Not supported: pipelined requests (a client that
pipelines is answered in order all the same, since each request is read after the previous answer is written).

Requests are framed strictly, the way request smuggling is defeated (RFC 9112 §6.3): a Content-Length must be
digits only and single; Content-Length together with Transfer-Encoding, or any Transfer-Encoding but ``chunked``,
is refused; chunk sizes are hex digits only and each chunk ends with CRLF; a head is at most 64 KB however it
arrives; header names carry no whitespace (no obsolete line folding). Every refusal is a ``WireError``: the server
answers 400 and closes the connection, so no byte after a bad frame is ever read as a request.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from dataclasses import dataclass

MAX_HEAD = 64 * 1024
_RECV = 256 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})
REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently", 302: "Found",
           303: "See Other", 304: "Not Modified", 307: "Temporary Redirect", 308: "Permanent Redirect",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 411: "Length Required", 413: "Payload Too Large",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class WireError(Exception):
    """The peer sent something that is not HTTP/1.1 we accept, or closed the connection mid-message."""


class PeerClosed(WireError):
    """The connection closed cleanly between messages."""


class IdleTimeout(PeerClosed):
    """No request began within the idle (or first-request) timeout: the server closes without an answer."""


_CHUNK_SIZE = re.compile(rb"^[0-9A-Fa-f]{1,16}$")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSIONS = ("HTTP/1.1", "HTTP/1.0")


@dataclass(slots=True)
class Message:
    start: list[str]  # request: [method, target, version]; response: [version, status, reason]
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    lines: list[str] | None = None  # the head's header lines as received (repeats kept: Set-Cookie)

    def header_pairs(self) -> list[tuple[str, str]]:
        """(name, value) in order, each repeat its own pair, names as sent."""
        pairs = []
        for line in self.lines or ():
            name, _, value = line.partition(":")
            pairs.append((name.strip(), value.strip()))
        return pairs

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.start[0].startswith("HTTP/1.0") or self.start[-1] == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


class Wire:
    """One connection: a socket and the bytes received but not consumed yet."""

    __slots__ = ("sock", "_buf", "_deadline", "_timeout")

    def __init__(self, sock: socket.socket) -> None:
        # Blocking mode, with timeouts as SO_RCVTIMEO/SO_SNDTIMEO when needed: a Python socket timeout would add
        # a poll() before every recv and send.
        sock.settimeout(None)
        self.sock = sock
        self._buf = bytearray()
        self._deadline: float | None = None  # of the exchange in progress
        self._timeout: float | None = None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _set_timeout(self, timeout: float | None) -> None:
        seconds = max(timeout, 0.001) if timeout is not None else 0.0
        timeval = struct.pack("ll", int(seconds), int(seconds % 1 * 1e6))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        self._timeout = timeout

    def _fill(self) -> bool:
        """Reads more bytes; False at end of stream. Honours the deadline of the message being read."""
        if self._deadline is not None:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("deadline passed")
            if self._timeout is None or remaining < self._timeout - 0.05:  # two syscalls: only when the
                self._set_timeout(remaining)                                 # deadline draws near
        try:
            chunk = self.sock.recv(_RECV)
        except BlockingIOError as exc:  # SO_RCVTIMEO passed
            raise socket.timeout("timed out") from exc
        if not chunk:
            return False
        self._buf += chunk
        return True

    def read_head(self, head_timeout: float | None = None) -> tuple[list[str], dict[str, str], list[str]]:
        """The next head. With ``head_timeout``, a head begun but not complete after that many seconds fails
        (a slow client cannot hold a thread by sending one byte now and then)."""
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self._buf) > MAX_HEAD:
                raise WireError(f"message head longer than {MAX_HEAD} bytes")
            if head_timeout is not None and self._buf and self._deadline is None:
                self._deadline = time.monotonic() + head_timeout  # only when a head needs a second read
            if not self._fill():
                if self._buf.strip():
                    raise WireError("connection closed inside a message head")
                raise PeerClosed("connection closed")
        if end > MAX_HEAD:
            raise WireError(f"message head longer than {MAX_HEAD} bytes")
        lines = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        del self._buf[: end + 4]
        start = lines[0].split(" ", 2)
        if len(start) < 2:
            raise WireError(f"malformed start line {lines[0][:80]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name[0] in " \t" or name[-1] in " \t":
                raise WireError(f"malformed header line {line[:80]!r}")
            key = name.lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return start, headers, lines[1:]

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not self._fill():
                raise WireError("connection closed inside a message body")
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _read_line(self) -> bytes:
        while (end := self._buf.find(b"\r\n")) < 0:
            if len(self._buf) > MAX_HEAD or not self._fill():
                raise WireError("malformed chunked body")
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            digits = self._read_line().split(b";", 1)[0]
            if not _CHUNK_SIZE.match(digits):
                raise WireError(f"malformed chunk size {digits[:20]!r}")
            size = int(digits, 16)
            if size == 0:
                while self._read_line():  # trailers, then the empty line
                    pass
                return b"".join(parts)
            total += size
            if total > limit:
                raise BodyTooLarge(total, limit)
            parts.append(self._read_exact(size))
            if self._read_exact(2) != b"\r\n":
                raise WireError("a chunk is not followed by CRLF")

    def read_body(self, headers: dict[str, str], *, limit: int, until_close: bool = False) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._read_chunked(limit)
        length = headers.get("content-length")
        if length is not None:
            if not (length.isdigit() and length.isascii()) or len(length) > 18:  # no sign, space or list
                raise WireError(f"malformed content-length {length[:40]!r}")
            n = int(length)
            if n > limit:
                raise BodyTooLarge(n, limit)
            return self._read_exact(n) if n else b""
        if not until_close:
            return b""
        while self._fill():
            if len(self._buf) > limit:
                raise BodyTooLarge(len(self._buf), limit)
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def read_request(self, limit: int, *, idle_timeout: float | None = None,
                     head_timeout: float | None = None) -> Message:
        """The next request, its body included (after a 100 Continue when the client waits for one). Waits at
        most ``idle_timeout`` for it to begin (IdleTimeout), and ``head_timeout`` for its head once begun."""
        if idle_timeout is not None and not self._buf:
            if self._timeout != idle_timeout:
                self._set_timeout(idle_timeout)
            try:
                if not self._fill():
                    raise PeerClosed("connection closed")
            except socket.timeout as exc:
                raise IdleTimeout(f"no request within {idle_timeout:g} s") from exc
        try:
            start, headers, lines = self.read_head(head_timeout)
        except socket.timeout as exc:
            raise WireError(f"the request head did not arrive within {head_timeout:g} s") from exc
        if self._deadline is not None:  # the head took several reads: back to the plain per-read timeout
            self._deadline = None
            self._set_timeout(idle_timeout)
        if len(start) != 3 or start[2] not in _VERSIONS or not _TOKEN.match(start[0]):
            raise WireError(f"malformed request line {' '.join(start)[:80]!r}")
        framing = headers.get("transfer-encoding")
        if framing is not None and ("content-length" in headers or framing.lower() != "chunked"):
            raise WireError("Transfer-Encoding must be chunked alone, never with Content-Length"
                            if "content-length" in headers else f"unsupported Transfer-Encoding {framing[:40]!r}")
        if "expect" in headers and headers["expect"].lower() == "100-continue":
            self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "content-length" in headers or "transfer-encoding" in headers:
            try:
                return Message(start, headers, self.read_body(headers, limit=limit), lines)
            except BodyTooLarge as exc:
                exc.headers = headers
                raise
        return Message(start, headers, b"", lines)

    def exchange(self, head: bytes, body: bytes, *, timeout: float, limit: int, method: str = "POST") -> Message:
        """Sends one request and reads its response, all within ``timeout`` seconds."""
        self._deadline = time.monotonic() + timeout
        if self._timeout != timeout:
            self._set_timeout(timeout)
        try:
            self.sock.sendall(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                self.sock.sendall(body)
        except BlockingIOError as exc:  # SO_SNDTIMEO passed
            raise socket.timeout("timed out") from exc
        while True:
            start, headers, lines = self.read_head()
            try:
                status = int(start[1])
            except ValueError as exc:
                raise WireError(f"malformed status line {' '.join(start)[:80]!r}") from exc
            if status >= 200 or status == 101:
                break  # 1xx interim responses (100 Continue) are skipped
        if method == "HEAD" or status in _NO_BODY_STATUSES:
            body_in = b""
        else:
            body_in = self.read_body(headers, limit=limit, until_close=True)
        self._deadline = None
        return Message(start, headers, body_in, lines)


class BodyTooLarge(WireError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"body of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit
        self.headers: dict[str, str] = {}  # of the request, when it was one


def request_head(method: str, target: str, host: str, headers: dict[str, str], body_length: int) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"host: {host}", f"content-length: {body_length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def response_head_pairs(status: int, pairs: list[tuple[str, str]], body_length: int | None, *,
                        close: bool = False) -> bytes:
    """A response head whose headers may repeat (Set-Cookie), for answers passed through from a function."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
    if body_length is not None:
        lines.append(f"content-length: {body_length}")
    lines += [f"{k}: {v}" for k, v in pairs]
    if close:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def response_head(status: int, headers: dict[str, str], body_length: int, *, close: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"date: {_http_date()}",
             f"content-length: {body_length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if close:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_date_cache: list = [0, ""]


def _http_date() -> str:
    now = int(time.time())
    if _date_cache[0] != now:  # formatted once a second, not once a request
        _date_cache[0], _date_cache[1] = now, time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))
    return _date_cache[1]
