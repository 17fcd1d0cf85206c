"""Versions and aliases through the real Pulumi CLI on the lab fleet: publish v1 and v2, an alias with a 10 %
canary, promote (with a ProvisionConfig on the alias, whose instance follows it), roll back, and a version still in
use refused by name. Each step's invocations say which version
ran (x-fc-invocation-service-version)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from _agent import grant_lab, post, wait_for
from _fleet_agents import agent
from _pulumi import REPO, PulumiFailed, Stack
from test_versions import chi_square_p

PROGRAM = REPO / "tests" / "programs" / "releases"
SOURCE = "def handler(event, context):\n    return '{code}'\n"
# The fleet's agents draw without a fixed seed here (the agent test fixes one); at this significance a correct
# router fails once in a million runs, a router off by 5 points fails nearly always (n = 600).
ALPHA = 1e-6


def _code(folder: Path, code: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.py").write_text(SOURCE.format(code=code))
    return str(folder)


def _ran(url: str, qualifier: str) -> tuple[bytes, str]:
    status, headers, body = post(url, b"", qualifier=qualifier)
    assert status == 200, body
    return body, headers["x-fc-invocation-service-version"]


def _served(urls: list[str], per_host: int) -> list[tuple[bytes, str]]:
    """``per_host`` invocations of prod on each host, the hosts at once (one request at a time on each, as the
    round-robin over the hosts sent them)."""
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        return [r for rs in pool.map(lambda url: [_ran(url, "prod") for _ in range(per_host)], urls) for r in rs]


def test_publish_canary_promote_rollback_and_a_version_in_use(lab, lab_fleet: dict, fleet_file: Path,
                                                               tmp_path: Path) -> None:
    code = tmp_path / "code"
    stack = Stack(tmp_path, "releases", program=PROGRAM)
    stack.config(fleetFile=str(fleet_file), codeDir=_code(code, "A"), versions=json.dumps(["v1"]),
                 alias=json.dumps({"version": "v1"}))
    try:
        stack.up()
        grant_lab(lab)  # the key post() signs with
        out = stack.outputs()
        urls = out["invoke_endpoints"]
        assert out["version_ids"] == {"v1": "1"} and len(urls) == 3
        assert all(_ran(u, "prod") == (b"A", "1") for u in urls)

        # v2 with other code; prod sends 10 % to it. v1 is untouched (versions are immutable).
        _code(code, "B")
        stack.config(versions=json.dumps(["v1", "v2"]), alias=json.dumps({"version": "v1", "weights": {"v2": 0.1}}))
        stack.up()
        assert stack.outputs()["version_ids"] == {"v1": "1", "v2": "2"}
        assert _ran(urls[0], "1") == (b"A", "1") and _ran(urls[0], "2") == (b"B", "2")
        assert _ran(urls[0], "LATEST") == (b"B", "LATEST")
        served = _served(urls, 200)
        assert len(served) == 600
        assert {b for b, v in served if v == "1"} == {b"A"} and {b for b, v in served if v == "2"} == {b"B"}
        counts = [sum(1 for _, v in served if v == "1"), sum(1 for _, v in served if v == "2")]
        assert chi_square_p(counts, [0.9, 0.1]) > ALPHA, counts

        # Promote: in place, and on every host once the `up` returns. With it, one instance provisioned on prod
        # (FC binds provision configs to an alias): version 2's pool on lab-1 (rank 0) keeps it.
        stack.config(alias=json.dumps({"version": "v2"}), provision="1")
        promoted = stack.up(diff=True)  # what it changed, as `preview --diff` plans it: the alias updated in place
        assert "~ " in promoted and "replace" not in promoted, promoted
        assert all(_ran(u, "prod") == (b"B", "2") for u in urls for _ in range(5))
        out = stack.outputs()
        assert out["provision_version"] == "2" and out["provision_targets"] == {"lab-1": 1, "lab-2": 0, "lab-3": 0}
        with agent(lab, lab_fleet, "lab-1") as (_ssh, client):
            wait_for(lambda: client.get_provision_config("releases-fn", "prod")["current"] == 1, "v2 provisioned")

        # Roll back: the provisioned instance follows the alias to version 1 (no change to the config itself).
        stack.config(alias=json.dumps({"version": "1"}))
        stack.up()
        assert all(_ran(u, "prod") == (b"A", "1") for u in urls for _ in range(5))
        with agent(lab, lab_fleet, "lab-1") as (_ssh, client):
            status = wait_for(lambda: (s := client.get_provision_config("releases-fn", "prod"))["version_id"] == "1"
                              and s["current"] == 1 and s, "the provisioned instance to follow prod to version 1")
            assert status["current_error"] is None

        # v1 leaves the program while prod still points at it: refused, naming the alias; nothing changes.
        stack.config(versions=json.dumps(["v2"]))
        with pytest.raises(PulumiFailed, match="used by alias prod"):
            stack.up()
        assert all(_ran(u, "1") == (b"A", "1") for u in urls)

        # Pointing prod at v2 in the same `up` frees v1: the alias moves first, then v1 goes.
        stack.config(alias=json.dumps({"version": "v2"}))
        stack.up()
        assert all(_ran(u, "prod") == (b"B", "2") for u in urls)
        status, _, body = post(urls[0], b"", qualifier="1")
        assert status == 404 and json.loads(body)["Code"] == "VersionNotFound"
    finally:
        stack.destroy()
