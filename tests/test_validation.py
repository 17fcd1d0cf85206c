"""Input validation: every rule rejects with a message that names the property and the rule (no host needed)."""

from __future__ import annotations

import pytest

import fc_provider
from fc_provider._model.validation import UNKNOWN, FleetModel, FunctionModel, check
from fc_provider.function import FunctionProvider

SHA = "0" * 64
VALID = {"function_name": "hello", "runtime": "python3.11", "handler": "index.handler", "memory_size": 128,
         "timeout": 3, "code_checksum": SHA}
CONTAINER = {"runtime": "custom-container", "code_checksum": None,
             "custom_container_config": {"image": "registry.local:5000/web:1.0"}}

RULES = [
    ({"function_name": "1abc"}, "function_name", "starting with a letter"),
    ({"function_name": "a" * 65}, "function_name", "1-64 characters"),
    ({"function_name": "has space"}, "function_name", "letters, digits"),
    ({"runtime": "nodejs12"}, "runtime", "python3.9, python3.11, python3.13, nodejs18, nodejs20"),
    ({"handler": "nodot"}, "handler", "pattern"),
    ({"memory_size": 64}, "memory_size", "greater than or equal to 128"),
    ({"memory_size": 200}, "memory_size", "multiple of 64"),
    ({"memory_size": 40000}, "memory_size", "less than or equal to 32768"),
    ({"timeout": 0}, "timeout", "greater than or equal to 1"),
    ({"timeout": 86401}, "timeout", "less than or equal to 86400"),
    ({"cpu": 0.07}, "cpu", "multiple of 0.05"),
    ({"cpu": 2.0, "memory_size": 1024}, "cpu", "between 1:1 and 1:4"),
    ({"disk_size": 1024}, "disk_size", "512"),
    ({"environment_variables": {"1X": "v"}}, "environment_variables", "start with a letter"),
    ({"environment_variables": {"FC_X": "v"}}, "environment_variables", "reserved prefix FC_"),
    ({"environment_variables": {"K": "v" * 5000}}, "environment_variables", "4 KB"),
    ({"instance_concurrency": 2}, "instance_concurrency", "must be 1 for built-in runtimes"),
    ({"runtime": "custom"}, "custom_runtime_config", "custom_runtime_config (command, args, port) is required"),
    ({"runtime": "custom", "custom_runtime_config": {"command": []}}, "custom_runtime_config", "at least 1"),
    ({"runtime": "custom", "custom_runtime_config": {"command": ["x"], "port": 70000}}, "custom_runtime_config",
     "less than or equal to 65535"),
    ({"runtime": "custom", "custom_runtime_config": {"command": ["x"], "health_check_config": {"timeout_seconds": 5}}},
     "custom_runtime_config", "less than or equal to 3"),
    ({"runtime": "custom", "custom_runtime_config": {"command": ["x"], "health_check_config": {"http_get_url": "h"}}},
     "custom_runtime_config", "pattern"),
    ({"runtime": "custom", "custom_runtime_config": {"command": ["x"]}, "instance_concurrency": 201},
     "instance_concurrency", "less than or equal to 200"),
    ({"min_instances": 5, "max_instances": 2}, "min_instances", "must not exceed max_instances"),
    ({"hibernation": True}, "hibernation", "needs min_instances of 1"),
    ({"instance_lifecycle_config": {"initializer": {"handler": "index.init", "timeout": 601}}},
     "instance_lifecycle_config", "less than or equal to 600"),
    ({"instance_lifecycle_config": {"pre_stop": {"handler": "index.bye", "timeout": 901}}},
     "instance_lifecycle_config", "less than or equal to 900"),
    ({"instance_lifecycle_config": {"initializer": {"handler": "noDot"}}}, "instance_lifecycle_config", "pattern"),
    ({"description": "d" * 257}, "description", "at most 256 characters"),
    ({"cpu": 0.0}, "cpu", "greater than or equal to 0.05"),
    ({"cpu": 16.05, "memory_size": 32768}, "cpu", "less than or equal to 16"),
    ({"code_checksum": None}, "code", "code is required for runtime python3.11"),
    ({"code_checksum": None, "code_error": "code path /nope does not exist"}, "code", "does not exist"),
    ({"runtime": "custom-container", "code_checksum": None}, "custom_container_config", "is required for runtime"),
    ({"custom_container_config": {"image": "web:1"}}, "custom_container_config", "only for runtime custom-container"),
    ({**CONTAINER, "custom_container_config": {"image": "Bad Image"}}, "custom_container_config", "pattern"),
    ({**CONTAINER, "custom_container_config": {"image": "web:1", "port": 0}}, "custom_container_config",
     "greater than or equal to 1"),
    ({**CONTAINER, "custom_container_config": {"image": "web:1", "health_check_config": {"period_seconds": 121}}},
     "custom_container_config", "less than or equal to 120"),
    ({**CONTAINER, "custom_runtime_config": {"command": ["x"]}}, "custom_runtime_config", "not for runtime"),
    ({"internet_access": "sometimes"}, "internet_access", "valid boolean"),
    ({"custom_dns": {"name_servers": ["not-an-ip"]}}, "custom_dns", "IPv4 or IPv6"),
    ({"custom_dns": {"name_servers": ["1.1.1.1", "8.8.8.8", "9.9.9.9", "1.0.0.1"]}}, "custom_dns", "at most 3"),
    ({"custom_dns": {"searches": ["bad domain"]}}, "custom_dns", "must be a DNS name"),
    ({"custom_dns": {"searches": [f"d{i}.example" for i in range(7)]}}, "custom_dns", "at most 6"),
    ({"custom_dns": {"dns_options": [{"name": "nd ots", "value": "2"}]}}, "custom_dns", "pattern"),
    ({"log_config": {"project": "P", "logstore": "store"}}, "log_config", "pattern"),
    ({"log_config": {"project": "proj", "logstore": "../x"}}, "log_config", "pattern"),
    ({"log_config": {"project": "proj"}}, "log_config", "Field required"),
    ({"log_config": {"project": "proj", "logstore": "ls", "log_begin_rule": "Always"}}, "log_config",
     "'None' or 'DefaultRegex'"),
    ({"tags": {f"k{i}": "v" for i in range(21)}}, "tags", "at most 20 tags"),
    ({"tags": {"aliyun-x": "v"}}, "tags", "not start with 'aliyun'"),
    ({"tags": {"k": "v" * 129}}, "tags", "at most 128 characters"),
    ({"placement": []}, "placement", "at least one host"),
    ({"placement": ["a", "a"]}, "placement", "must not repeat"),
    ({"placement": {"selector": {}, "replicas": 1}}, "placement", "at least 1 item"),
    ({"placement": {"selector": {"zone": "a"}, "replicas": 0}}, "placement", "greater than or equal to 1"),
]


@pytest.mark.parametrize(("change", "prop", "phrase"), RULES, ids=[r[1] + ":" + r[2] for r in RULES])
def test_each_rule_names_the_property_and_the_rule(change: dict, prop: str, phrase: str) -> None:
    result = FunctionProvider().check({}, {**VALID, **change})
    failures = [(f.property, f.reason) for f in result.failures]
    assert failures, f"{change} was accepted"
    assert any(p == prop and phrase in reason for p, reason in failures), failures


def test_valid_input_passes_and_unknowns_wait_for_their_values() -> None:
    assert check(FunctionModel, VALID) == []
    assert check(FunctionModel, {**VALID, **CONTAINER}) == []
    assert check(FunctionModel, {**VALID, "memory_size": UNKNOWN, "environment_variables": {"A": UNKNOWN}}) == []
    # A rule across fields waits while any value is unknown: here code may turn out to be set.
    assert check(FunctionModel, {**VALID, "code_checksum": UNKNOWN}) == []
    assert check(FunctionModel, {**VALID, "cpu": UNKNOWN, "memory_size": 4096}) == []


def test_fleet_rules() -> None:
    host = {"name": "a", "address": "10.0.0.1", "host_public_key": "ssh-ed25519 AAAA"}
    assert check(FleetModel, {"hosts": [host], "ssh_private_key": "k"}) == []
    failures = check(FleetModel, {"hosts": [host, host], "ssh_private_key": "k"})
    assert any(p == "hosts" and "unique" in r for p, r in failures)
    failures = check(FleetModel, {"hosts": [{**host, "host_public_key": "nonsense"}], "ssh_private_key": "k"})
    assert any(p == "hosts" and "host_public_key" in r for p, r in failures)
    guards = fc_provider.InvokePortGuardsArgs(max_connections=8).to_input()
    failures = check(FleetModel, {"hosts": [host], "ssh_private_key": "k", "invoke_port_guards": guards})
    assert failures and failures[0][0].startswith("invoke_port_guards") and "16" in failures[0][1], failures
    failures = check(FleetModel, {"hosts": [host], "ssh_private_key": "k",
                                  "invoke_port_guards": {"head_timeout": 5}})
    assert failures and "head_timeout" in failures[0][0] + failures[0][1], failures


def test_the_invoke_port_guards_reach_each_hosts_agent_config() -> None:
    from fc_provider.fleet import _settings
    guards = fc_provider.InvokePortGuardsArgs(head_timeout_seconds=5, max_connections=64).to_input()
    props = {"hosts": [{"name": "a", "capacity": None}], "invoke_port_guards": guards}
    assert _settings(props, "a") == {"head_timeout_seconds": 5, "keepalive_timeout_seconds": 60.0,
                                     "max_connections": 64}


def test_fleet_stem_cells_rules_name_the_field() -> None:
    host = {"name": "a", "address": "10.0.0.1", "host_public_key": "ssh-ed25519 AAAA"}
    base = {"hosts": [host], "ssh_private_key": "k"}
    assert check(FleetModel, {**base, "stem_cells": {"enabled": True, "runtimes": ["python3.11"]}}) == []
    for bad, words in (({"min_per_runtime": 5, "max_per_runtime": 2}, "exceed"), ({"memory_mb": 16}, "64"),
                       ({"runtimes": ["custom"]}, "not built-in"), ({"max_per_runtime": 100}, "64")):
        failures = check(FleetModel, {**base, "stem_cells": bad})
        assert any(p.startswith("stem_cells") and words in r for p, r in failures), failures
    args = fc_provider.FleetArgs(hosts=[], ssh_private_key="k",
                                 stem_cells=fc_provider.StemCellsArgs(enabled=True, max_per_runtime=8))
    assert args.stem_cells == {"enabled": True, "max_per_runtime": 8}  # the same dict the plain form gives


def test_public_api_exports_are_complete_and_sorted() -> None:
    public = {n for n in dir(fc_provider) if not n.startswith("_") and n[0].isupper()}
    assert sorted(fc_provider.__all__) == fc_provider.__all__
    assert public == set(fc_provider.__all__)
