"""Stem cells given the function's layers (issue 15): a function with layers takes a cell, and sees its own layers'
files, read-only, at FC's paths (``/opt``, PYTHONPATH / NODE_PATH), the built-in runtime still at
``/opt/fc-runtime``, and nothing of another function's layers; checked from inside the container and with
``docker inspect``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from _agent import deploy, install, instances, post, wait_for
from test_agent_layers import _layer
from test_stem_cells import CELLS, _cell_containers, _cells

from fc_lab import Lab
from fc_provider._remote import fleetops as ops

PROBE = """import json, os, sys

def handler(event, context):
    found = {}
    for module in ('mine', 'theirs', 'vendored'):
        try:
            found[module] = __import__(module).WHO
        except ImportError:
            found[module] = None
    try:
        open('/opt/written', 'w')
        writable = True
    except OSError:
        writable = False
    mounts = [line.split() for line in open('/proc/self/mountinfo')]
    return json.dumps({"found": found, "writable": writable, "opt": sorted(os.listdir('/opt')),
                       "python": sorted(os.listdir('/opt/python')),
                       "runtime": sorted(os.listdir('/opt/fc-runtime')), "tool": open('/opt/bin/tool').read(),
                       "opt_mounts": [m[5].split(',')[0] for m in mounts if m[4] == '/opt'],
                       "pythonpath": os.environ.get('PYTHONPATH'), "sys_path": sys.path})
"""


@pytest.fixture(scope="module")
def conn(lab: Lab, lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    connection = install(lab_fleet, 2, stem_cells=CELLS)
    yield connection
    ops.uninstall_agent(connection, connection.hosts[0])  # its functions, cells and mounts with it


def _idle(conn: ops.FleetConnection, runtime: str = "python3.11") -> None:
    wait_for(lambda: _cells(conn, runtime)["idle"] >= 2, f"two idle {runtime} cells", timeout=120)


def test_a_function_with_layers_takes_a_cell_and_sees_only_its_own_layers_read_only(
        conn: ops.FleetConnection, lab: Lab, tmp_path: Path) -> None:
    mine = _layer(conn, tmp_path, "cell-mine", {"python/mine.py": "WHO = 'mine'\n", "bin/tool": "#!/bin/sh\n"
                                                "echo mine\n"})
    theirs = _layer(conn, tmp_path, "cell-theirs", {"python/theirs.py": "WHO = 'theirs'\n",
                                                    "bin/tool": "#!/bin/sh\necho theirs\n"})
    code = tmp_path / "a"
    (code / "vendor").mkdir(parents=True)
    (code / "vendor" / "vendored.py").write_text("WHO = 'vendored'\n")
    url_a = deploy(conn, code, "cell-layer-a", PROBE, layers=[mine],
                   environment_variables={"PYTHONPATH": "/code/vendor"})  # the function's own search path first
    url_b = deploy(conn, tmp_path / "b", "cell-layer-b", PROBE, layers=[theirs])
    for name, url, layer, other in (("cell-layer-a", url_a, "mine", "theirs"),
                                    ("cell-layer-b", url_b, "theirs", "mine")):
        _idle(conn)
        idle = set(_cell_containers(lab, conn))
        status, headers, body = post(url)
        assert status == 200 and "x-fc-error-type" not in headers, body
        got = json.loads(body)
        (inst,) = [i for i in instances(conn, name) if i["instance_id"] == headers["x-fc-instance-id"]]
        assert inst["container_id"] in idle  # it took a cell: no container was started for it
        # Its own layer at FC's paths, read-only; nothing of the other function's; the runtime where it was.
        assert got["found"][layer] == layer and got["found"][other] is None
        assert got["python"] == [f"{layer}.py"] and got["tool"] == f"#!/bin/sh\necho {layer}\n"
        assert set(got["opt"]) == {"bin", "python", "fc-runtime"} and "runtime.py" in got["runtime"]
        assert got["writable"] is False and got["opt_mounts"] and set(got["opt_mounts"]) == {"ro"}
        assert "/opt/python" in got["pythonpath"].split(":")
        if name == "cell-layer-a":
            assert got["found"]["vendored"] == "vendored"
            assert got["pythonpath"].startswith("/code/vendor:")
            assert got["sys_path"].index("/code/vendor") < got["sys_path"].index("/opt/python")
        # The engine's view: /opt is the cell's own folder, read-only, receiving the agent's mounts only.
        attrs = _cell_containers(lab, conn)[inst["container_id"]]
        (opt,) = [m for m in attrs["Mounts"] if m["Destination"] == "/opt"]
        assert opt["RW"] is False and opt["Propagation"] == "rslave"
        assert opt["Source"].endswith("/opt") and "/cells/" in opt["Source"]
        (runtime,) = [m for m in attrs["Mounts"] if m["Destination"] == "/opt/fc-runtime"]
        assert runtime["RW"] is False
        # Named after its instance once the hand-over is recorded, as a container started for it is.
        wait_for(lambda: _cell_containers(lab, conn)[inst["container_id"]]["Name"] == f"/fc-{inst['instance_id']}",
                 "the cell to be renamed after its instance", 30)


def test_a_nodejs_function_with_a_layer_takes_a_cell_and_requires_from_it(
        conn: ops.FleetConnection, lab: Lab, tmp_path: Path) -> None:
    lab.ensure_runtime_images(["nodejs20"], hosts=[conn.hosts[0].name])
    layer = _layer(conn, tmp_path, "cell-node-mod", {"nodejs/node_modules/greet/index.js":
                                                     "exports.hello = () => 'hello from a layer';\n"})
    source = ("exports.handler = async () => JSON.stringify({greet: require('greet').hello(), "
              "nodePath: process.env.NODE_PATH, runtime: require('fs').existsSync('/opt/fc-runtime/runtime.js')});\n")
    url = deploy(conn, tmp_path / "node", "cell-layer-node", source, filename="index.js", runtime="nodejs20",
                 layers=[layer])
    _idle(conn, "nodejs20")
    idle = set(_cell_containers(lab, conn))
    status, headers, body = post(url)
    assert status == 200 and "x-fc-error-type" not in headers, body
    got = json.loads(body)
    assert got["greet"] == "hello from a layer" and got["runtime"] is True
    assert "/opt/nodejs/node_modules" in got["nodePath"].split(":")
    (inst,) = [i for i in instances(conn, "cell-layer-node") if i["instance_id"] == headers["x-fc-instance-id"]]
    assert inst["container_id"] in idle
