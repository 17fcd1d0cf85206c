"""Every offered runtime runs its own interpreter (images built offline from Debian: python3.9 on 11, python3.13 on
13, nodejs18 on 12, nodejs20 on 13), and the Node.js runtime keeps FC's handler contract: async and callback
handlers, the context's fields, a thrown error as UnhandledInvocationError, the initializer, layers on NODE_PATH."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Iterator

import pytest
from _agent import deploy, install, post
from test_agent_layers import _layer

from fc_lab import Lab
from fc_provider import AgentAPIError
from fc_provider._remote import fleetops as ops

EXTRA_RUNTIMES = ["python3.9", "python3.13", "nodejs18", "nodejs20"]
PY_VERSION = "import sys\n\ndef handler(event, context):\n    return '%d.%d' % sys.version_info[:2]\n"
NODE_VERSION = "exports.handler = async () => process.version;\n"

NODE = r"""
const layered = (() => { try { return require('greeting').words; } catch (e) { return null; } })();
let initialized = 0;
exports.init = (context, callback) => { initialized += 1; callback(null, 'ready'); };
exports.handler = async (event, context) => {
  const ask = JSON.parse(event.toString() || '{}');
  console.log('asked for', ask.mode);
  if (ask.mode === 'throw') throw new TypeError('no such mode');
  if (ask.mode === 'reject') return Promise.reject(new RangeError('rejected on purpose'));
  return {isBuffer: Buffer.isBuffer(event), requestId: context.requestId, name: context.function.name,
          memory: context.function.memory, timeout: context.function.timeout, handler: context.function.handler,
          qualifier: context.service.qualifier, versionId: context.service.versionId, region: context.region,
          hasLogger: typeof context.logger.info === 'function', initialized, layered};
};
exports.callback = (event, context, callback) => {
  if (event.toString() === 'fail') return callback(new Error('callback failed'));
  setTimeout(() => callback(null, 'called back: ' + event.toString()), 10);
};
exports.plain = (event) => Buffer.from('raw:' + event.toString());
"""


@pytest.fixture(scope="module")
def conn(lab: Lab, lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    lab.ensure_runtime_images(EXTRA_RUNTIMES, hosts=[lab_fleet["hosts"][0]["name"]])
    connection = install(lab_fleet)
    yield connection
    ops.uninstall_agent(connection, connection.hosts[0])


@pytest.mark.parametrize("runtime, source, filename, expected", [
    ("python3.9", PY_VERSION, "index.py", b"3.9"),
    ("python3.11", PY_VERSION, "index.py", b"3.11"),
    ("python3.13", PY_VERSION, "index.py", b"3.13"),
    ("nodejs18", NODE_VERSION, "index.js", b"v18."),
    ("nodejs20", NODE_VERSION, "index.js", b"v20."),
])
def test_each_runtime_reports_its_own_interpreter(conn: ops.FleetConnection, tmp_path: Path, runtime: str,
                                                  source: str, filename: str, expected: bytes) -> None:
    name = "ver-" + runtime.replace(".", "")
    url = deploy(conn, tmp_path, name, source, filename=filename, runtime=runtime)
    status, headers, body = post(url)
    assert status == 200 and "x-fc-error-type" not in headers, body
    assert body.startswith(expected), body


def test_a_runtime_without_an_image_is_refused_naming_those_with_one(conn: ops.FleetConnection,
                                                                     tmp_path: Path) -> None:
    with pytest.raises(AgentAPIError) as info:
        deploy(conn, tmp_path, "ver-py312", PY_VERSION, runtime="python3.12")
    assert info.value.status == 400 and "runtime python3.12 has no image" in info.value.message
    assert "nodejs20" in info.value.message and "python3.13" in info.value.message


@pytest.fixture(scope="module")
def node_url(conn: ops.FleetConnection, tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("node")
    layer = _layer(conn, tmp, "node-greeting", {"nodejs/node_modules/greeting/index.js":
                                                "exports.words = 'hello from a layer';\n"},
                   compatible_runtime=["nodejs20", "nodejs18"])
    url = deploy(conn, tmp / "code", "node-contract", NODE, filename="index.js", runtime="nodejs20", timeout=7,
                 memory_size=256, layers=[layer],
                 instance_lifecycle_config={"initializer": {"handler": "index.init", "timeout": 5}})
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        agent.publish_version("node-contract", "")
        agent.put_alias("node-contract", "live", {"version_id": "1"})
    return url


def test_node_async_handler_gets_fc_context_and_a_buffer(node_url: str) -> None:
    status, headers, body = post(node_url, b'{"mode": "ok"}', {"x-fc-log-type": "Tail"})
    assert status == 200 and "x-fc-error-type" not in headers, body
    answer = json.loads(body)
    assert answer == {"isBuffer": True, "requestId": headers["x-fc-request-id"], "name": "node-contract",
                      "memory": 256, "timeout": 7, "handler": "index.handler", "qualifier": "LATEST",
                      "versionId": "", "region": "local", "hasLogger": True, "initialized": 1,
                      "layered": "hello from a layer"}
    assert "asked for ok" in base64.b64decode(headers["x-fc-log-result"]).decode()
    _, _, aliased = post(node_url, b"{}", qualifier="live")
    assert json.loads(aliased)["qualifier"] == "live" and json.loads(aliased)["versionId"] == "1"


@pytest.mark.parametrize("mode, error_type, message", [("throw", "TypeError", "no such mode"),
                                                       ("reject", "RangeError", "rejected on purpose")])
def test_node_errors_are_unhandled_invocation_errors(node_url: str, mode: str, error_type: str,
                                                     message: str) -> None:
    status, headers, body = post(node_url, json.dumps({"mode": mode}).encode())
    assert status == 200 and headers["x-fc-error-type"] == "UnhandledInvocationError"
    error = json.loads(body)
    assert error["errorType"] == error_type and error["errorMessage"] == message
    assert any("index.js" in line for line in error["stackTrace"]), error
    assert post(node_url, b'{"mode": "ok"}')[0] == 200  # the instance lives on


def test_node_callback_and_plain_handlers(conn: ops.FleetConnection, tmp_path: Path) -> None:
    url = deploy(conn, tmp_path / "cb", "node-callback", NODE, filename="index.js", runtime="nodejs18",
                 handler="index.callback")
    assert post(url, b"hi")[2] == b"called back: hi"
    status, headers, body = post(url, b"fail")
    assert headers["x-fc-error-type"] == "UnhandledInvocationError" and json.loads(body)["errorMessage"] == \
        "callback failed"
    url = deploy(conn, tmp_path / "plain", "node-plain", NODE, filename="index.js", runtime="nodejs18",
                 handler="index.plain")
    assert post(url, b"x")[2] == b"raw:x"
