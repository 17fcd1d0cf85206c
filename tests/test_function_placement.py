"""Placement and diff rules that need no host: selectors, replicas, capacity, stability, exact diffs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from fc_provider._model.placement import Need, PlacementError, place, planned_without_capacity
from fc_provider.function import FunctionProvider

HOSTS = [
    {"name": "a", "labels": {"zone": "z1", "disk": "ssd"}, "capacity": {"cpu": 1.0, "memory_mb": 1024}},
    {"name": "b", "labels": {"zone": "z1"}, "capacity": None},
    {"name": "c", "labels": {"zone": "z2", "disk": "ssd"}, "capacity": {"cpu": 4.0, "memory_mb": 8192}},
]
SMALL = Need.of({"memory_size": 128})


def no_info(names: list[str]) -> dict[str, Any]:
    return {n: None for n in names}


def test_selector_picks_matching_hosts_with_most_free_room() -> None:
    assert place({"selector": {"disk": "ssd"}, "replicas": 1}, HOSTS, [], SMALL, no_info) == ["c"]
    assert place({"selector": {"zone": "z1"}, "replicas": 2}, HOSTS, [], SMALL, no_info) == ["a", "b"]
    assert place(["b"], HOSTS, [], SMALL, no_info) == ["b"]
    assert place(None, HOSTS, [], SMALL, no_info) == ["a", "b", "c"]


def test_placement_is_stable_while_the_current_hosts_qualify() -> None:
    calls: list[list[str]] = []

    def info(names: list[str]) -> dict[str, Any]:
        calls.append(names)
        return no_info(names)

    assert place({"selector": {"disk": "ssd"}, "replicas": 1}, HOSTS, ["a"], SMALL, info) == ["a"]
    assert calls == []  # nothing to choose: no host is asked
    assert planned_without_capacity({"selector": {"disk": "ssd"}, "replicas": 1}, HOSTS, ["a"]) == ["a"]
    assert planned_without_capacity({"selector": {"disk": "ssd"}, "replicas": 2}, HOSTS, ["a"]) is None


def test_agent_reported_capacity_wins_over_declared_and_committed_counts() -> None:
    big = Need.of({"memory_size": 2048, "min_instances": 1})
    reports = {"a": {"capacity": {"cpu": 8, "memory_mb": 16384}, "committed": {"cpu": 0, "memory_mb": 0}},
               "c": {"capacity": {"cpu": 4, "memory_mb": 8192}, "committed": {"cpu": 3.5, "memory_mb": 7000}}}
    assert place({"selector": {"disk": "ssd"}, "replicas": 1}, HOSTS, [], big, lambda n: reports) == ["a"]


def test_no_fitting_host_names_the_rule_and_the_hosts() -> None:
    with pytest.raises(PlacementError, match=r"selector \{zone=z3\} with replicas=1: 0 host\(s\) match"):
        place({"selector": {"zone": "z3"}}, HOSTS, [], SMALL, no_info)
    with pytest.raises(PlacementError, match=r"replicas=3: 2 host\(s\) match \(a, c\)"):
        place({"selector": {"disk": "ssd"}, "replicas": 3}, HOSTS, [], SMALL, no_info)
    huge = Need.of({"memory_size": 16384, "cpu": 8})
    with pytest.raises(PlacementError, match=r"capacity for cpu 8 and memory 16384 MB .*a: free cpu 1, memory 1024"):
        place({"selector": {"disk": "ssd"}, "replicas": 1}, HOSTS, [], huge, no_info)
    with pytest.raises(PlacementError, match="host\\(s\\) x are not part of the fleet"):
        place(["x"], HOSTS, [], SMALL, no_info)


def test_check_reports_a_placement_that_no_host_can_satisfy() -> None:
    news = {"function_name": "f", "code_checksum": "0" * 64, "connection": {"hosts": HOSTS}}
    assert FunctionProvider().check({}, {**news, "placement": {"selector": {"zone": "z1"}, "replicas": 2}}).failures == []
    failures = FunctionProvider().check({}, {**news, "placement": {"selector": {"zone": "z1"}, "replicas": 3}}).failures
    assert [(f.property, f.reason) for f in failures] == [
        ("placement", "placement: no host fits selector {zone=z1} with replicas=3: 2 host(s) match (a, b) of a, b, c")]
    failures = FunctionProvider().check({}, {**news, "placement": ["a", "x"]}).failures
    assert [f.property for f in failures] == ["placement"] and "x are not part of the fleet" in failures[0].reason


OLD = {"function_name": "f", "code_checksum": "0" * 64, "memory_size": 128, "timeout": 3, "cpu": None,
       "custom_runtime_config": None, "environment_variables": {"A": "1"}, "hosts": ["a", "b", "c"],
       "connection": {"hosts": HOSTS}, "placement": None}


def test_diff_ignores_floats_and_defaults_and_reports_real_changes() -> None:
    provider = FunctionProvider()
    same = {**OLD, "memory_size": 128.0, "timeout": 3.0, "disk_size": 512.0, "internet_access": True, "tags": {},
            "description": "", "code": {"path": "/elsewhere"}}
    assert provider.diff("f", OLD, same).changes is False
    changed = provider.diff("f", OLD, {**OLD, "memory_size": 256.0})
    assert changed.changes is True and changed.replaces == []
    renamed = provider.diff("f", OLD, {**OLD, "function_name": "g"})
    assert renamed.changes is True and renamed.replaces == ["function_name"]
    # drift: a refresh found the function on two hosts only
    assert provider.diff("f", {**OLD, "hosts": ["a", "b"]}, OLD).changes is True
    nested = {**OLD, "runtime": "custom", "custom_runtime_config": {"command": ["x"]}}
    filled = {**nested, "custom_runtime_config": {"command": ["x"], "args": [], "port": 9000.0}}
    assert provider.diff("f", nested, filled).changes is False


# --- on the lab, through the real Pulumi CLI ------------------------------------------------------------------------

LABELS = {"lab-1": {"zone": "a"}, "lab-2": {"zone": "b"}, "lab-3": {"zone": "b"}}


def test_selector_placement_on_the_lab_is_stable_and_names_the_rule_when_nothing_fits(
        lab: Any, lab_fleet: dict, fleet_file: Any, tmp_path: Any) -> None:
    import json

    from _fleet_agents import agent
    from _pulumi import REPO, Stack

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "index.py").write_text("def handler(event, context):\n    return event\n")
    stack = Stack(tmp_path, "placement", program=REPO / "tests" / "programs" / "function")
    stack.config(fleetFile=str(fleet_file), functionName="placed-fn", codeDir=str(tmp_path / "code"),
                 hostLabels=json.dumps(LABELS),
                 extra=json.dumps({"placement": {"selector": {"zone": "b"}, "replicas": 1}}))
    try:
        stack.up()
        first = stack.outputs()["hosts"]
        assert len(first) == 1 and first[0] in ("lab-2", "lab-3")
        assert "Resources:\n    3 unchanged" in stack.up()  # stable: the function does not move
        stack.config(extra=json.dumps({"placement": {"selector": {"zone": "b"}, "replicas": 2}}))
        stack.up()
        assert stack.outputs()["hosts"] == ["lab-2", "lab-3"]
        stack.config(extra=json.dumps({"placement": {"selector": {"zone": "a"}, "replicas": 2}}))
        failed = stack.run("up", "--yes", "--skip-preview", check=False)
        assert failed.returncode != 0
        assert re.search(r"property placement value .* has a problem: placement: no host fits selector \{zone=a\} "
                         r"with replicas=2: 1 host\(s\) match \(lab-1\)", failed.stdout), failed.stdout
        assert "Traceback" not in failed.stdout + failed.stderr
        stack.config(extra=json.dumps({"placement": ["lab-1"]}))
        stack.up()
        assert stack.outputs()["hosts"] == ["lab-1"]
        for gone in ("lab-2", "lab-3"):  # moved away: removed where it no longer runs
            with agent(lab, lab_fleet, gone) as (_ssh, client):
                assert client.get_function("placed-fn") is None
    finally:
        stack.destroy()
