"""A web function: your own HTTP server (here the standard library's), started by the custom runtime."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self._reply(200, {"status": "ok"})

    def do_POST(self):
        event = self.rfile.read(int(self.headers.get("content-length") or 0))
        self._reply(200, {"echo": event.decode(), "request_id": self.headers.get("x-fc-request-id")})

    def _reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("FC_SERVER_PORT", "9000"))), Handler).serve_forever()
