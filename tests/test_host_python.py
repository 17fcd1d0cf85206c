"""One agent bundle for any host Python 3.10+: the bundle the provider builds (here on 3.11.7) compiles and runs on
Python 3.10, 3.12 and 3.13 (this machine's pyenv interpreters) and on Debian 12's own python3 (3.11.2, older than
the tarfile filters): the agent starts on loopback against a lab host's Docker engine, takes an access key, unpacks
a code package and answers a signed GetFunction. An older Python is refused with a message naming the host, its
version and the minimum."""

from __future__ import annotations

import glob
import http.client
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from fc_lab import Lab
from fc_provider._model.archive import pack_code
from fc_provider._model.bundle import agent_bundle
from fc_provider._remote.fleetops import python_problem
from fc_provider._remote.signer import Credentials, sign

VERSIONS = ("3.10", "3.11-debian", "3.12", "3.13")


def interpreter(version: str) -> str:
    if version == "3.11-debian":
        assert Path("/usr/bin/python3.11").exists(), "Debian's python3.11 is missing"
        return "/usr/bin/python3.11"
    found = sorted(glob.glob(f"/root/.pyenv/versions/{version}.*/bin/python{version}"))
    assert found, f"no Python {version} on this machine (expected under /root/.pyenv/versions)"
    return found[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bundle")
    with tarfile.open(fileobj=io.BytesIO(agent_bundle().data), mode="r:gz") as tar:
        tar.extractall(folder, filter="data")
    assert not list(folder.rglob("*.so")), "the bundle must not carry compiled extensions (one Python each)"
    return folder


@pytest.mark.parametrize("version", VERSIONS)
def test_the_bundle_compiles_and_the_agent_serves_on_python(version: str, bundle: Path, lab: Lab,
                                                            tmp_path: Path) -> None:
    python = interpreter(version)
    compiled = subprocess.run([python, "-m", "compileall", "-q", "-x", r"/tests?/", str(bundle)],
                              capture_output=True, text=True, timeout=300)
    assert compiled.returncode == 0, compiled.stdout[-2000:] + compiled.stderr[-2000:]
    socket_path = lab.fleet()["hosts"][0]["docker_socket"]
    token, control, invoke = secrets.token_urlsafe(16), free_port(), free_port()
    config = {"host_name": f"py{version}", "token": token, "state_dir": str(tmp_path / "state"),
              "access_keys_dir": str(tmp_path / "keys"), "control_port": control, "invoke_address": "127.0.0.1",
              "invoke_port": invoke, "docker_url": f"unix://{socket_path}",
              # This agent runs in the machine's own mount namespace, not a lab host's: no stem cells (their
              # mounts would be this machine's), and its run folder is the test's.
              "stem_cells": {"enabled": False}, "run_dir": str(tmp_path / "run")}
    (tmp_path / "config.json").write_text(json.dumps(config))
    pidfile = tmp_path / "agent.pid"
    log = (tmp_path / "agent.log").open("wb")
    agent = subprocess.Popen([python, "-m", "runtime_agent", "--config", str(tmp_path / "config.json"),
                              "--pidfile", str(pidfile)], cwd=bundle, env={**os.environ, "PYTHONPATH": str(bundle)},
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not pidfile.exists():
            assert agent.poll() is None, (tmp_path / "agent.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the agent did not start within 60 s"
            time.sleep(0.1)
        key = Credentials("LTAIpy" + secrets.token_hex(6), secrets.token_urlsafe(24))
        status, _ = request(control, "PUT", f"/v1/access-keys/{key.access_key_id}",
                            {"authorization": f"Bearer {token}", "content-type": "application/json"},
                            json.dumps({"secret": key.access_key_secret}).encode())
        assert status == 200
        url = f"http://127.0.0.1:{invoke}/2023-03-30/functions"
        status, body = request(invoke, "GET", "/2023-03-30/functions", sign(key, "GET", url))
        assert (status, json.loads(body)) == (200, {"functions": []})
        (tmp_path / "app").mkdir()
        (tmp_path / "app" / "index.py").write_text("def handler(event, context):\n    return event\n")
        package = pack_code(tmp_path / "app")
        (tmp_path / "state" / "code" / f"{package.checksum}.tar.gz").write_bytes(package.data)
        status, body = request(control, "PUT", "/v1/functions/on-py", {"authorization": f"Bearer {token}"},
                               json.dumps({"runtime": "python3.11", "handler": "index.handler", "memory_size": 128,
                                           "timeout": 3, "code_checksum": package.checksum}).encode())
        assert status == 200, body
        status, body = request(invoke, "GET", "/2023-03-30/functions/on-py", sign(key, "GET", f"{url}/on-py"))
        assert status == 200 and json.loads(body)["codeChecksum"] == package.checksum, body
        assert request(invoke, "GET", "/2023-03-30/functions", {})[0] == 400  # unsigned
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=60) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
        log.close()


def test_an_older_python_is_refused_naming_host_version_and_minimum() -> None:
    assert python_problem("lab-2", "3.9") == ("host lab-2 has Python 3.9; the agent needs Python 3.10 or newer as "
                                              "python3 (Ubuntu 22.04+, Debian 12+)")
    assert python_problem("lab-2", "3.13") is None and python_problem("lab-2", "3.10") is None
    assert "unreadable version" in (python_problem("lab-2", "garbage") or "")
