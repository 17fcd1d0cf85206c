"""The container's web server (standard library only): answers FC's invocations and its health checks."""

import json
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self._reply(200, {"status": "ok"})

    def do_POST(self):
        event = self.rfile.read(int(self.headers.get("content-length") or 0))
        if event == b"whoami":  # what the agent's tests check: who we run as and what we may write
            payload = {"uid": os.getuid(), "hostname": socket.gethostname(), "resolv_conf": _read("/etc/resolv.conf"),
                       "root_writable": os.access("/", os.W_OK), "tmp_writable": os.access("/tmp", os.W_OK),
                       "mode": os.environ.get("MODE", "")}
            return self._reply(200, payload)
        print(f"container got {len(event)} bytes")
        self._reply(200, {"echo": event.decode(errors="replace"), "request_id": self.headers.get("x-fc-request-id")})

    def _reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except OSError as exc:
        return str(exc)


ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("FC_SERVER_PORT", "9000"))), Handler).serve_forever()
