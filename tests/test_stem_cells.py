"""Stem cells (issue 15): cold starts take a started, frozen, code-less runtime container. A function started from
one sees only its own code, environment and limits (from inside the container and in ``docker inspect``); a cell is
used once and never again; the pool refills; cells are evicted before any instance; after ``kill -9`` cells are
re-adopted or removed, never handed out twice."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import pytest
from _agent import deploy, install, instances, post, wait_for

from fc_lab import Lab
from fc_provider._remote import fleetops as ops

CELLS = {"enabled": True, "min_per_runtime": 2, "max_per_runtime": 3}
NOOP = "def handler(event, context):\n    return 'ok'\n"
PROBE = """
import json, os

def _read(*paths):
    for path in paths:
        if os.path.exists(path):
            return open(path).read().strip()
    return None

def handler(event, context):
    try:
        open('/code/written', 'w').write('x')
        writable = True
    except OSError:
        writable = False
    mounts = [line.split() for line in open('/proc/self/mountinfo')]
    return json.dumps({
        "env": dict(os.environ), "code": sorted(os.listdir('/code')), "marker": open('/code/marker').read(),
        "cwd": os.getcwd(), "writable": writable,
        "memory": _read('/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory.max'),
        "quota": _read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us', '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us'),
        "code_mounts": [m[5].split(',')[0] for m in mounts if m[4] == '/code'],
    })
"""


@pytest.fixture(scope="module")
def cells_conn(lab: Lab, lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    conn = install(lab_fleet, 2, stem_cells=CELLS)
    yield conn
    ops.uninstall_agent(conn, conn.hosts[0])


def _cells(conn: ops.FleetConnection, runtime: str = "python3.11") -> dict:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        return agent.wait_healthy()["stem_cells"]["runtimes"].get(runtime, {"idle": 0})


def _idle(conn: ops.FleetConnection, count: int) -> None:
    wait_for(lambda: _cells(conn)["idle"] >= count, f"{count} idle stem cells", timeout=90)


def _cell_containers(lab: Lab, conn: ops.FleetConnection) -> dict[str, dict]:
    """Every cell container on the host (idle or become an instance): container id -> its inspect attributes."""
    client = lab.docker_client(conn.hosts[0].name)
    try:
        return {c.id: c.attrs for c in client.containers.list(all=True, filters={"label": "fc.cell"})}
    finally:
        client.close()


def _deploy_probe(conn: ops.FleetConnection, tmp: Path, name: str, **spec: object) -> str:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "marker").write_text(f"code of {name}")
    return deploy(conn, tmp, name, PROBE, **spec)


def _container_of(conn: ops.FleetConnection, name: str, instance_id: str) -> str:
    (inst,) = [i for i in instances(conn, name) if i["instance_id"] == instance_id]
    return inst["container_id"]


def test_a_function_from_a_stem_cell_sees_only_its_own_code_environment_and_limits(
        cells_conn: ops.FleetConnection, lab: Lab, tmp_path: Path) -> None:
    url_a = _deploy_probe(cells_conn, tmp_path / "a", "cell-a", memory_size=256, environment_variables={"WHO": "a"})
    url_b = _deploy_probe(cells_conn, tmp_path / "b", "cell-b", memory_size=512, environment_variables={"WHO": "b"})
    _idle(cells_conn, 2)
    idle_before = set(_cell_containers(lab, cells_conn))
    seen: dict[str, str] = {}
    for name, url, memory, quota in (("cell-a", url_a, 256, 12500), ("cell-b", url_b, 512, 25000)):
        status, headers, body = post(url)
        assert status == 200 and "x-fc-error-type" not in headers, body
        got = json.loads(body)
        container_id = _container_of(cells_conn, name, headers["x-fc-instance-id"])
        assert container_id in idle_before  # it was one of the idle cells: no container was started for it
        seen[name] = container_id
        # Its own code, read-only, in the folder the runtime works in; nothing of the other function.
        assert got["marker"] == f"code of {name}" and got["code"] == ["index.py", "marker"]
        assert got["writable"] is False and got["code_mounts"] and set(got["code_mounts"]) == {"ro"}
        assert got["cwd"] == "/code"
        # Its own environment only: its variables, FC's, none of the other's and nothing of the cell's own.
        env = got["env"]
        assert env["WHO"] == name[-1] and env["FC_FUNCTION_NAME"] == name
        assert env["FC_FUNCTION_MEMORY_SIZE"] == str(memory) and env["FC_INSTANCE_ID"] == headers["x-fc-instance-id"]
        assert "FC_STEM_CELL_TOKEN" not in env
        # Its own limits, as the kernel enforces them inside the container...
        assert int(got["memory"]) == memory * 1024 * 1024 and int(got["quota"]) == quota
        # ... and as the engine reports them (recorded just after the hand-over).
        attrs = wait_for(lambda: (a := _cell_containers(lab, cells_conn)[container_id])["HostConfig"]["Memory"]
                         == memory * 1024 * 1024 and a, "docker inspect to show the function's limits", 30)
        hc = attrs["HostConfig"]
        assert hc["CpuQuota"] == quota and hc["CpuPeriod"] == 100000 and hc["MemorySwap"] == memory * 1024 * 1024
        assert hc["ReadonlyRootfs"] is True and hc["CapDrop"] == ["ALL"] and "no-new-privileges" in hc["SecurityOpt"]
        assert attrs["Config"]["User"] == "65534:65534"
        (code,) = [m for m in attrs["Mounts"] if m["Destination"] == "/code"]
        assert code["RW"] is False and code["Propagation"] == "rslave"
    assert seen["cell-a"] != seen["cell-b"]


@pytest.mark.parametrize("runtime", ["runtime.py", "runtime.js"])
def test_the_runtime_of_a_cell_runs_nothing_before_its_one_assignment(tmp_path: Path, runtime: str) -> None:
    """Each built-in runtime as a cell, run here as a process: it refuses invocations until the agent's
    assignment (with the cell's token) arrives, loads the code only then, and refuses a second assignment."""
    import http.client
    import os
    import shutil
    import socket
    import subprocess
    import sys

    from runtime_agent.instances.spec import BOOTSTRAP_DIR

    if runtime == "runtime.py":
        (tmp_path / "index.py").write_text("import os\n\ndef handler(event, context):\n    return os.environ['WHO']\n")
        command = [sys.executable]
    else:
        (tmp_path / "index.js").write_text("exports.handler = async () => process.env.WHO;\n")
        command = [shutil.which("node") or "node"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PATH": os.environ["PATH"], "FC_STEM_CELL_TOKEN": "secret", "FC_FUNC_CODE_PATH": str(tmp_path),
           "FC_RUNTIME_PORT": str(port)}
    proc = subprocess.Popen([*command, str(BOOTSTRAP_DIR / runtime)], env=env, cwd="/")

    def call(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request(method, path, body, headers or {})
            reply = conn.getresponse()
            return reply.status, reply.read()
        finally:
            conn.close()

    try:
        wait_for(lambda: _answers(call), "the cell's runtime to listen", 20)
        assert call("POST", "/invoke")[0] == 503  # no function yet
        assignment = json.dumps({"environment": {"WHO": "me", "FC_FUNCTION_HANDLER": "index.handler",
                                                 "FC_FUNC_CODE_PATH": str(tmp_path)}}).encode()
        assert call("POST", "/assign", assignment, {"x-fc-cell-token": "wrong"})[0] == 409
        assert call("POST", "/assign", assignment, {"x-fc-cell-token": "secret"})[0] == 200
        assert call("POST", "/invoke") == (200, b"me")
        assert call("POST", "/assign", assignment, {"x-fc-cell-token": "secret"})[0] == 409  # once for its life
    finally:
        proc.kill()
        proc.wait()


def _answers(call) -> bool:
    try:
        return call("GET", "/")[0] == 200
    except OSError:
        return False


def test_a_nodejs_function_starts_from_a_stem_cell_with_its_own_code_and_environment(
        cells_conn: ops.FleetConnection, lab: Lab, tmp_path: Path) -> None:
    lab.ensure_runtime_images(["nodejs20"], hosts=[cells_conn.hosts[0].name])
    source = ("const fs = require('fs');\nexports.handler = async () => JSON.stringify({who: process.env.WHO, "
              "token: 'FC_STEM_CELL_TOKEN' in process.env, cwd: process.cwd(), code: fs.readdirSync('/code').sort()});\n")
    url = deploy(cells_conn, tmp_path, "cell-node", source, filename="index.js", runtime="nodejs20",
                 environment_variables={"WHO": "node"})
    wait_for(lambda: _cells(cells_conn, "nodejs20")["idle"] >= 2, "idle nodejs20 cells", timeout=120)
    idle = set(_cell_containers(lab, cells_conn))
    status, headers, body = post(url)
    assert status == 200 and "x-fc-error-type" not in headers, body
    assert json.loads(body) == {"who": "node", "token": False, "cwd": "/code", "code": ["index.js"]}
    assert _container_of(cells_conn, "cell-node", headers["x-fc-instance-id"]) in idle


def test_a_used_cell_is_never_reused_and_the_pool_refills(cells_conn: ops.FleetConnection, lab: Lab,
                                                          tmp_path: Path) -> None:
    url = deploy(cells_conn, tmp_path, "cell-once", NOOP)
    _idle(cells_conn, 2)
    used: set[str] = set()
    for round_ in range(3):
        if round_:  # a new environment retires the instance: the next request is a cold start again
            deploy(cells_conn, tmp_path, "cell-once", NOOP, environment_variables={"ROUND": str(round_)})
            wait_for(lambda: not instances(cells_conn, "cell-once"), "the old instance to stop")
            _idle(cells_conn, 2)
        idle = set(_cell_containers(lab, cells_conn))
        status, headers, body = post(url)
        assert status == 200 and body == b"ok"
        container_id = _container_of(cells_conn, "cell-once", headers["x-fc-instance-id"])
        assert container_id in idle and container_id not in used
        used.add(container_id)
    _idle(cells_conn, 2)  # refilled with new cells
    info = _cells(cells_conn)
    assert info["recent_cold_starts"] >= 3 and info["target"] == 3  # demand grows the pool, up to its bound
    _idle(cells_conn, 3)
    # The instances that cells became are gone with their code: only the last one lives, and no cell is shared.
    containers = _cell_containers(lab, cells_conn)
    assert len(used - set(containers)) == 2 and not (used - {container_id}) & set(containers)


def test_what_cannot_be_injected_starts_its_own_container(cells_conn: ops.FleetConnection, lab: Lab,
                                                          tmp_path: Path) -> None:
    _idle(cells_conn, 2)
    for name, spec in (("cell-disk", {"disk_size": 1024}), ("cell-offline", {"internet_access": False}),
                       ("cell-dns", {"custom_dns": {"name_servers": ["10.0.0.53"]}}),
                       ("cell-hashseed", {"environment_variables": {"PYTHONHASHSEED": "0"}})):
        url = deploy(cells_conn, tmp_path / name, name, NOOP, **spec)
        status, headers, body = post(url)
        assert status == 200 and body == b"ok", body
        container_id = _container_of(cells_conn, name, headers["x-fc-instance-id"])
        assert container_id not in _cell_containers(lab, cells_conn)  # a container of its own


def test_cells_are_evicted_before_any_instance(lab: Lab, lab_fleet: dict, tmp_path: Path) -> None:
    earlier = install(lab_fleet, 1)
    ops.uninstall_agent(earlier, earlier.hosts[0])  # the room is counted exactly: nothing an earlier test left there
    conn = install(lab_fleet, 1, capacity_cpu=2.0, capacity_memory_mb=1024, stem_cells=CELLS)
    try:
        deploy(conn, tmp_path / "pinned", "pinned", NOOP, memory_size=512, min_instances=1)
        idle_url = deploy(conn, tmp_path / "idle", "idle", NOOP, memory_size=256)
        assert post(idle_url)[0] == 200  # an idle instance without min_instances: evictable
        wait_for(lambda: _cells(conn)["idle"] == 2 and [i for i in instances(conn, "pinned") if i["state"] == "ready"],
                 "pinned, idle and two cells: the host is full", 90)
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
            assert agent.wait_healthy()["in_use"]["memory_mb"] == 512 + 256 + 2 * 128
        big = deploy(conn, tmp_path / "big", "big", NOOP, memory_size=256)
        status, _, body = post(big)
        assert status == 200 and body == b"ok", body
        assert len(instances(conn, "idle")) == 1 and len(instances(conn, "pinned")) == 1  # both kept
        assert _cells(conn)["idle"] == 0  # the cells made the room
        time.sleep(2)  # four refill periods: a full host grows no cell
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
            info = agent.wait_healthy()
        assert info["stem_cells"]["runtimes"]["python3.11"]["idle"] == 0 and info["in_use"]["memory_mb"] == 1024
    finally:
        ops.uninstall_agent(conn, conn.hosts[0])


def _stop_agent(lab: Lab, host: str) -> None:
    """kill -9, supervisor first (it would start the agent again)."""
    lab.run(host, ["sh", "-c", "kill -9 $(cat /var/lib/fc-agent/supervisor.pid) $(cat /var/lib/fc-agent/agent.pid)"],
            check=True)


def test_after_kill_9_cells_are_re_adopted_or_removed_never_handed_out_twice(
        cells_conn: ops.FleetConnection, lab: Lab, lab_fleet: dict, tmp_path: Path) -> None:
    url = deploy(cells_conn, tmp_path / "kept", "cell-kept", NOOP)
    _idle(cells_conn, 2)
    _, served, _ = post(url)
    _container_of(cells_conn, "cell-kept", served["x-fc-instance-id"])  # the instance runs in its own container
    _idle(cells_conn, 2)
    host = cells_conn.hosts[0].name
    with ops.agent_session(cells_conn, cells_conn.hosts[0]) as (_ssh, agent):
        busy = {i["container_id"] for i in agent.instances()}  # cells that instances (of earlier tests too) became
    _stop_agent(lab, host)
    cells = set(_cell_containers(lab, cells_conn))
    busy &= cells  # (fall-back functions' instances are no cells)
    idle = sorted(cells - busy)
    # The crash window: a cell marked assigned in SQLite whose hand-over never happened.
    half_taken = idle[0]
    lab.run(host, ["python3", "-c", "import sqlite3, sys; db = sqlite3.connect('/var/lib/fc-agent/agent.db'); "
                   "db.execute(\"UPDATE stem_cells SET state='assigned', instance_id='lost' WHERE container_id=?\", "
                   "(sys.argv[1],)); db.commit()", half_taken], check=True)
    install(lab_fleet, 2, stem_cells=CELLS)  # the agent again, under its supervisor
    containers = _cell_containers(lab, cells_conn)
    assert half_taken not in containers  # assigned but no instance: removed, never handed out
    assert busy <= set(containers) and set(idle[1:]) <= set(containers)  # the others re-adopted
    _, again, body = post(url)
    assert body == b"ok" and again["x-fc-instance-id"] == served["x-fc-instance-id"]  # the same instance
    other = deploy(cells_conn, tmp_path / "next", "cell-next", NOOP)
    _, fresh, _ = post(other)
    taken = _container_of(cells_conn, "cell-next", fresh["x-fc-instance-id"])
    assert taken in idle[1:] or taken not in containers  # a re-adopted idle cell (or a new one), never a used one
    assert taken not in busy | {half_taken}


def test_which_functions_may_take_a_cell_and_why_not() -> None:
    """The fall-back rules as the agent applies them (cellpolicy.FALLBACKS): each names its reason."""
    from runtime_agent.instances.cellpolicy import fallback_reason

    plain = {"runtime": "python3.11", "handler": "index.handler"}
    for spec in (plain, {**plain, "layers": ["acs:fc:local:fleet:layers/l/versions/1"]},
                 {**plain, "environment_variables": {"PYTHONPATH": "/code/vendor", "NODE_ENV": "production",
                                                     "PYTHONUNBUFFERED": "1", "TZ": "UTC"}}):
        assert fallback_reason(spec) is None, spec  # layers and these variables are given at the assignment
    for spec, words in (({**plain, "runtime": "custom.debian12"}, "not a built-in"),
                        ({**plain, "internet_access": False}, "internet_access"),
                        ({**plain, "disk_size": 1024}, "disk_size"),
                        ({**plain, "environment_variables": {"LD_LIBRARY_PATH": "/code/x"}}, "LD_"),
                        ({**plain, "runtime": "nodejs20", "environment_variables": {"NODE_OPTIONS": "--x"}},
                         "NODE_OPTIONS")):
        reason = fallback_reason(spec)
        assert reason is not None and words in reason, (spec, reason)
