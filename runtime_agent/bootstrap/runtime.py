"""The built-in Python runtime: runs inside every event-function container (stdlib only).

It imports the user's handler ("module.function", looked up under the code directory) and serves one HTTP
endpoint for the agent on the host: POST /invoke calls ``handler(event, context)`` as Function Compute's built-in
Python runtime does (event as bytes). A function's own exception is not an HTTP error: it comes back as 200 with
``x-fc-error-type: UnhandledInvocationError`` and FC's error JSON. The runtime serves one request at a time: the
built-in runtime's instance concurrency is exactly 1, and the agent never sends more.

As a stem cell (``FC_STEM_CELL_TOKEN`` set; runtime_agent/instances/stemcells.py) it starts with no function: it
answers GET / and refuses everything else until the agent's ``POST /assign`` (carrying that token) gives it the
function's environment, handler included; only then does it look at ``/code``, where the agent has mounted the
code by then. It is assigned once for its whole life.
"""

from __future__ import annotations

import base64
import hmac
import importlib
import io
import json
import os
import sys
import traceback
from http.server import BaseHTTPRequestHandler, HTTPServer

CODE_DIR = os.environ.get("FC_FUNC_CODE_PATH", "/code")
PORT = int(os.environ.get("FC_RUNTIME_PORT", "9000"))
LOG_TAIL_BYTES = 4096
STEM_CELL_TOKEN = os.environ.get("FC_STEM_CELL_TOKEN")
STARTED_PYTHONPATH = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))


class Credentials:
    access_key_id = ""
    access_key_secret = ""
    security_token = ""


class FunctionMeta:
    def __init__(self) -> None:
        self.name = os.environ.get("FC_FUNCTION_NAME", "")
        self.handler = os.environ.get("FC_FUNCTION_HANDLER", "")
        self.memory = int(float(os.environ.get("FC_FUNCTION_MEMORY_SIZE") or 0))
        self.timeout = int(float(os.environ.get("FC_FUNCTION_TIMEOUT") or 0))
        self.qualifier = os.environ.get("FC_QUALIFIER", "LATEST")


class Context:
    """What FC passes as ``context``: request id, function metadata, credentials, region and account."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.credentials = Credentials()
        self.function = FunctionMeta()
        self.region = os.environ.get("FC_REGION", "local")
        self.account_id = os.environ.get("FC_ACCOUNT_ID", "")
        self.service = None


class _Tee(io.TextIOBase):
    """Copies writes to the container's stream and to the current request's buffer (for x-fc-log-result)."""

    def __init__(self, stream):
        self.stream = stream
        self.buffer_for_request: io.StringIO | None = None

    def write(self, s):
        self.stream.write(s)
        self.stream.flush()
        if self.buffer_for_request is not None:
            self.buffer_for_request.write(s)
        return len(s)

    def flush(self):
        self.stream.flush()


def _error_body(exc: BaseException) -> bytes:
    frames = traceback.extract_tb(exc.__traceback__)
    stack = [f'  File "{f.filename}", line {f.lineno}, in {f.name}' for f in frames[1:]]
    return json.dumps(
        {"errorMessage": str(exc), "errorType": type(exc).__name__, "stackTrace": stack}
    ).encode()


def _load(handler_spec: str):
    module_name, _, func_name = handler_spec.rpartition(".")
    if not module_name or not func_name:
        raise ValueError(f"handler {handler_spec!r} must look like 'module.function'")
    module = importlib.import_module(module_name)
    return getattr(module, func_name)


class RuntimeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # an answer leaves in one write, but http.server's own errors do not
    handlers: dict[str, object] = {}
    initialized = False
    assigned = STEM_CELL_TOKEN is None
    stdout_tee: _Tee
    stderr_tee: _Tee

    def log_message(self, format, *args):  # the agent logs invocations; keep the container's log for the user
        pass

    def do_GET(self):
        self._reply(200, b"ok", {})

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        event = self.rfile.read(length) if length else b""
        request_id = self.headers.get("x-fc-request-id", "")
        if self.path.startswith("/assign"):
            return self._assign(event)
        if not RuntimeHandler.assigned:
            return self._reply(503, b'{"errorMessage": "stem cell: no function assigned yet"}', {})
        if self.path.startswith("/initialize"):
            kind, spec = "initializer", self.headers.get("x-fc-initializer", "")
        elif self.path.startswith("/pre-stop"):
            kind, spec = "pre_stop", self.headers.get("x-fc-pre-stop", "")
        else:
            kind, spec = "handler", os.environ.get("FC_FUNCTION_HANDLER", "")
        log = io.StringIO()
        self.stdout_tee.buffer_for_request = log
        self.stderr_tee.buffer_for_request = log
        headers: dict[str, str] = {}
        try:
            func = _load(spec)
            context = Context(request_id)
            result = func(context) if kind != "handler" else func(event, context)
            if result is None:
                body = b""
            elif isinstance(result, bytes):
                body = result
            elif isinstance(result, str):
                body = result.encode()
            else:
                body = json.dumps(result).encode()
        except BaseException as exc:  # noqa: BLE001 - any failure of user code is the user's error, reported as FC does
            traceback.print_exc()
            headers["x-fc-error-type"] = (
                "UnhandledInvocationError" if kind == "handler" else f"{kind.title().replace('_', '')}Error"
            )
            body = _error_body(exc)
        finally:
            self.stdout_tee.buffer_for_request = None
            self.stderr_tee.buffer_for_request = None
        tail = log.getvalue().encode()[-LOG_TAIL_BYTES:]
        if tail:
            headers["x-fc-log-result"] = base64.b64encode(tail).decode()
        self._reply(200, body, headers)

    def _assign(self, body: bytes) -> None:
        """The function's environment, once: the cell becomes that function's instance for good."""
        token = self.headers.get("x-fc-cell-token", "")
        if RuntimeHandler.assigned or not STEM_CELL_TOKEN or not hmac.compare_digest(token, STEM_CELL_TOKEN):
            return self._reply(409, b'{"errorMessage": "this runtime is not an unassigned stem cell"}', {})
        RuntimeHandler.assigned = True
        environment = json.loads(body)["environment"]
        os.environ.clear()  # the cell's own variables (its token too) go; the function's alone remain
        os.environ.update(environment)
        code_dir = environment.get("FC_FUNC_CODE_PATH", CODE_DIR)
        _search_paths(code_dir, environment.get("PYTHONPATH", ""))
        os.chdir(code_dir)  # the mounted code, not the empty folder the process started in
        importlib.invalidate_caches()  # the finders may have listed /code while it was still empty
        sys.path_importer_cache.clear()
        self._reply(200, b"assigned", {})

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(body)))
        # Head and body in one write (what end_headers does, with the body appended): two writes make two
        # segments, and the agent would wake once for the head and once more for the body.
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(body)
        self.flush_headers()


def _search_paths(code_dir: str, pythonpath: str) -> None:
    """sys.path as a process started with the function's PYTHONPATH has it (the code folder, this file's folder, the
    PYTHONPATH entries, the interpreter's own); the cell started with its runtime's default PYTHONPATH. The layers'
    folders (/opt/python...) did not exist then: the cleared importer cache finds them now."""
    entries = [p for p in pythonpath.split(os.pathsep) if p]
    rest = [p for p in sys.path if p not in STARTED_PYTHONPATH and p not in (CODE_DIR, code_dir, SCRIPT_DIR)]
    sys.path[:] = [code_dir, SCRIPT_DIR, *entries, *rest]


def main() -> None:
    sys.path.insert(0, CODE_DIR)
    if STEM_CELL_TOKEN is None:  # a stem cell changes directory once its function's code is mounted
        os.chdir(CODE_DIR)
    RuntimeHandler.stdout_tee = sys.stdout = _Tee(sys.__stdout__)
    RuntimeHandler.stderr_tee = sys.stderr = _Tee(sys.__stderr__)
    server = HTTPServer(("0.0.0.0", PORT), RuntimeHandler)
    server.serve_forever()


if __name__ == "__main__":
    main()
