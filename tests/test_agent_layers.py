"""Layers on a real agent: packages uploaded once per host and shared, merged read-only into /opt with the
first-listed layer winning a clash, on the built-in runtime's paths; compatibility, unknown ARNs, zip-slip and a
deleted layer version that functions still use."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Iterator

import pytest
from _agent import deploy, install, post

from fc_lab import Lab
from fc_provider import AgentAPIError
from fc_provider._model.archive import pack_code
from fc_provider._remote import commands as cmd
from fc_provider._remote import fleetops as ops

PROBE = """import json, os, shutil, subprocess, sys

def handler(event, context):
    import clash, greet
    try:
        open('/opt/written', 'w')
        writable = True
    except OSError:
        writable = False
    try:
        import onlyb
        b = onlyb.WHO
    except ImportError:
        b = None
    return json.dumps({"greet": greet.hello(), "clash": clash.WHO, "onlyb": b, "writable": writable,
                       "tool": shutil.which("tool") and subprocess.run(["tool"], capture_output=True,
                                                                       text=True).stdout.strip(),
                       "ld": os.environ["LD_LIBRARY_PATH"], "opt": sorted(os.listdir('/opt'))})
"""


def _files(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
        if name.startswith("bin/"):
            (root / name).chmod(0o755)
    return root


def publish_layer(conn: ops.FleetConnection, name: str, data: bytes, checksum: str, **fields: object) -> str:
    with ops.agent_session(conn, conn.hosts[0]) as (ssh, agent):
        ssh.put_bytes(data, cmd.code_archive(checksum))
        version = agent.next_layer_version(name)
        record = agent.put_layer_version(name, version, {"code_checksum": checksum, "code_size": len(data),
                                                         **fields})
    return record["layer_version_arn"]


def _layer(conn: ops.FleetConnection, tmp: Path, name: str, files: dict[str, str], **fields: object) -> str:
    package = pack_code(_files(tmp / name, files))
    return publish_layer(conn, name, package.data, package.checksum, **fields)


@pytest.fixture(scope="module")
def conn(lab: Lab, lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    connection = install(lab_fleet)
    yield connection
    ops.uninstall_agent(connection, connection.hosts[0])


@pytest.fixture(scope="module")
def layers(conn: ops.FleetConnection, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("layers")
    return {
        "a": _layer(conn, tmp, "layer-a", {"python/greet/__init__.py": "def hello():\n    return 'hello from A'\n",
                                           "python/clash.py": "WHO = 'A'\n", "bin/tool": "#!/bin/sh\necho tool A\n",
                                           "lib/README": "a"}, compatible_runtime=["python3.11"]),
        "b": _layer(conn, tmp, "layer-b", {"python/clash.py": "WHO = 'B'\n", "python/onlyb.py": "WHO = 'only B'\n",
                                           "bin/tool": "#!/bin/sh\necho tool B\n"}),
        "old": _layer(conn, tmp, "layer-old", {"python/greet/__init__.py": "def hello():\n    return 'old'\n"},
                      compatible_runtime=["python3.9"]),
    }


def _run(conn: ops.FleetConnection, tmp: Path, name: str, arns: list[str]) -> dict:
    url = deploy(conn, tmp / name, name, PROBE, layers=arns)
    status, headers, body = post(url)
    assert status == 200 and "x-fc-error-type" not in headers, body
    return json.loads(body)


def test_layers_merge_into_opt_first_listed_wins(conn: ops.FleetConnection, layers: dict, tmp_path: Path) -> None:
    ab = _run(conn, tmp_path, "uses-ab", [layers["a"], layers["b"]])
    assert ab["greet"] == "hello from A" and ab["onlyb"] == "only B"
    assert ab["clash"] == "A" and ab["tool"] == "tool A"  # a clash: the first-listed layer wins
    assert ab["writable"] is False  # /opt is read-only
    assert {"python", "bin", "lib", "fc-runtime"} <= set(ab["opt"]) and "/opt/lib" in ab["ld"]
    ba = _run(conn, tmp_path, "uses-ba", [layers["b"], layers["a"]])
    assert ba["clash"] == "B" and ba["tool"] == "tool B" and ba["greet"] == "hello from A"


def test_a_layer_package_is_on_the_host_once_for_all_its_users(conn: ops.FleetConnection, layers: dict,
                                                               lab: Lab, tmp_path: Path) -> None:
    first = _run(conn, tmp_path, "user-one", [layers["a"]])
    second = _run(conn, tmp_path, "user-two", [layers["a"]])
    assert first["greet"] == second["greet"] == "hello from A"
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        checksum = agent.get_layer_version("layer-a", 1)["code_checksum"]
    listing = lab.run(conn.hosts[0].name, ["ls", "/var/lib/fc-agent/code"], capture_output=True, text=True,
                      check=True).stdout.split()
    assert sorted(e for e in listing if e.startswith(checksum)) == [checksum, f"{checksum}.tar.gz"]


def test_bad_layer_lists_are_refused_naming_the_entry(conn: ops.FleetConnection, layers: dict,
                                                      tmp_path: Path) -> None:
    cases = [([layers["old"]], 400, "compatible with python3.9, not python3.11"),
             (["acs:fc:local:fleet:layers/nope/versions/1"], 404, "layers[0]: layer nope version 1 does not exist"),
             (["acs:fc:cn-shanghai:official:layers/Python39/versions/3"], 400, "not a layer version ARN of this"),
             ([layers["a"]] * 6, 400, "at most 5")]
    for arns, status, words in cases:
        with pytest.raises(AgentAPIError) as info:
            deploy(conn, tmp_path / "bad", "bad-layers", PROBE, layers=arns)
        assert info.value.status == status and words in info.value.message, info.value.message


def test_a_package_escaping_its_root_is_refused(conn: ops.FleetConnection) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    data = buf.getvalue()
    with pytest.raises(AgentAPIError) as exc:
        publish_layer(conn, "slip", data, hashlib.sha256(data).hexdigest())
    assert exc.value.status == 400 and "outside the" in exc.value.message, exc.value.message


def test_a_deleted_layer_version_keeps_serving_its_users(conn: ops.FleetConnection, tmp_path: Path,
                                                         lab: Lab) -> None:
    arn = _layer(conn, tmp_path, "layer-gone", {"python/greet/__init__.py": "def hello():\n    return 'kept'\n",
                                                "python/clash.py": "WHO = 'G'\n"})
    url = deploy(conn, tmp_path / "keeper", "keeper", PROBE, layers=[arn])
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        checksum = agent.get_layer_version("layer-gone", 1)["code_checksum"]
        agent.publish_version("keeper", "with its layer")
        assert agent.delete_layer_version("layer-gone", 1)
    listing = lab.run(conn.hosts[0].name, ["ls", "/var/lib/fc-agent/code"], capture_output=True, text=True,
                      check=True).stdout.split()
    assert checksum in listing  # still used: not collected
    for qualifier in ("LATEST", "1"):
        status, _, body = post(url, qualifier=qualifier)
        assert json.loads(body)["greet"] == "kept"
    with pytest.raises(AgentAPIError, match="layer layer-gone version 1 does not exist"):
        deploy(conn, tmp_path / "late", "latecomer", PROBE, layers=[arn])


def test_a_functions_own_search_path_is_kept_before_the_layers(conn: ops.FleetConnection, layers: dict,
                                                              tmp_path: Path) -> None:
    """environment_variables PYTHONPATH=/code/vendor (boto3 vendored, as examples/object_pipeline does) stays on
    the path, ahead of /code and the layers' /opt/python: it used to be replaced, and the import failed."""
    code = _files(tmp_path / "own", {"vendor/vendored.py": "WHO = 'vendored'\n"})
    url = deploy(conn, code, "own-path", "import os, greet, vendored\n\ndef handler(event, context):\n"
                 "    return vendored.WHO + ' ' + greet.hello() + ' ' + os.environ['PYTHONPATH']\n",
                 layers=[layers["a"]], environment_variables={"PYTHONPATH": "/code/vendor"})
    status, headers, body = post(url)
    assert status == 200 and "x-fc-error-type" not in headers, body
    assert body.decode().startswith("vendored hello from A /code/vendor:/code:/opt/python"), body
