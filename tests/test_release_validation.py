"""Inputs of FunctionVersion and Alias: each bad value fails at preview naming the property and the rule, and
values unknown at preview (another resource's output) wait (no host needed)."""

from __future__ import annotations

import pytest

from fc_provider._model.validation import UNKNOWN
from fc_provider.alias import AliasProvider
from fc_provider.version import FunctionVersionProvider

ALIAS = {"function_name": "fn", "alias_name": "prod", "version_id": "1", "additional_version_weight": {},
         "description": ""}


@pytest.mark.parametrize("change, prop, words", [
    ({"alias_name": "LATEST"}, "alias_name", "not LATEST"),
    ({"alias_name": "9lives"}, "alias_name", "not starting with a digit"),
    ({"alias_name": "a" * 129}, "alias_name", "1-128"),
    ({"version_id": "LATEST"}, "version_id", "never LATEST"),
    ({"version_id": "one"}, "version_id", "pattern"),
    ({"version_id": None}, "version_id", "required"),
    ({"additional_version_weight": {"2": 1.5}}, "additional_version_weight", "from 0 to 1"),
    ({"additional_version_weight": {"2": -0.01}}, "additional_version_weight", "from 0 to 1"),
    ({"additional_version_weight": {"2": 0.1, "3": 0.2}}, "additional_version_weight", "at most one"),
    ({"additional_version_weight": {"LATEST": 0.1}}, "additional_version_weight", "never LATEST"),
    ({"additional_version_weight": {"1": 0.1}}, "additional_version_weight", "own version 1"),
    ({"description": "d" * 257}, "description", "at most 256"),
])
def test_alias_rules_name_the_property(change: dict, prop: str, words: str) -> None:
    result = AliasProvider().check({}, {**ALIAS, **change})
    assert [(f.property, words in f.reason) for f in result.failures] == [(prop, True)], result.failures


def test_alias_values_unknown_at_preview_wait_and_numbers_are_ids() -> None:
    assert AliasProvider().check({}, {**ALIAS, "version_id": UNKNOWN,
                                      "additional_version_weight": UNKNOWN}).failures == []
    assert AliasProvider().check({}, {**ALIAS, "version_id": 1.0, "additional_version_weight": {"2": 1}}).failures \
        == []


def test_alias_diff_replaces_only_on_names() -> None:
    olds = {**ALIAS, "hosts": ["a"]}
    moved = AliasProvider().diff("fn:prod", olds, {**olds, "version_id": 2.0, "additional_version_weight": {"1": 0.5}})
    assert moved.changes and moved.replaces == []
    renamed = AliasProvider().diff("fn:prod", olds, {**olds, "alias_name": "live"})
    assert renamed.replaces == ["alias_name"]
    assert not AliasProvider().diff("fn:prod", olds, {**olds, "version_id": 1.0}).changes


def test_every_version_argument_replaces() -> None:
    olds = {"function_name": "fn", "description": "a", "hosts": ["h"]}
    assert FunctionVersionProvider().diff("fn:1", olds, {**olds, "description": "b"}).replaces == ["description"]
    assert not FunctionVersionProvider().diff("fn:1", olds, {**olds, "hosts": ["h", "i"]}).changes
    failures = FunctionVersionProvider().check({}, {**olds, "description": "x" * 300}).failures
    assert [f.property for f in failures] == ["description"]


LAYER_ARN = "acs:fc:local:fleet:layers/greeter/versions/1"


@pytest.mark.parametrize("layers, runtimes, words", [
    ([f"acs:fc:local:fleet:layers/l{i}/versions/1" for i in range(6)], None, "at most 5"),
    (["acs:fc:cn-shanghai:official:layers/Python39/versions/3"], None, "another region or account"),
    (["arn:aws:lambda:us-east-1:1:layer:x:1"], None, "not a layer ARN"),
    ([LAYER_ARN, LAYER_ARN], None, "listed twice"),
    ([UNKNOWN], [["python3.9"]], "layers[0]: the layer is compatible with python3.9, not python3.11"),
])
def test_function_layer_rules_fail_at_preview(layers: list, runtimes: list | None, words: str) -> None:
    from test_validation import VALID

    from fc_provider.function import FunctionProvider

    result = FunctionProvider().check({}, {**VALID, "layers": layers, "layer_runtimes": runtimes})
    assert [f.property for f in result.failures] == ["layers"], result.failures
    assert words in result.failures[0].reason, result.failures[0].reason


def test_layer_version_rules() -> None:
    from fc_provider.layer import LayerVersionProvider

    base = {"layer_name": "greeter", "code_checksum": "0" * 64, "compatible_runtime": ["python3.11"]}
    assert LayerVersionProvider().check({}, base).failures == []
    for change, prop, words in (({"layer_name": "9x"}, "layer_name", "pattern"),
                                ({"compatible_runtime": ["cobol"]}, "compatible_runtime", "cobol is not a runtime"),
                                ({"code_checksum": None, "code_error": "archive x has an entry escaping its root "
                                  "(zip-slip): '../a'"}, "code", "zip-slip")):
        failures = LayerVersionProvider().check({}, {**base, **change}).failures
        assert [f.property for f in failures] == [prop] and words in failures[0].reason, failures
    old = {**base, "description": ""}
    assert LayerVersionProvider().diff("greeter:1", old, {**old, "description": "new"}).replaces == ["description"]


@pytest.mark.parametrize("runtime", ["python3.10", "python3.12"])
def test_a_runtime_not_built_here_is_refused_unless_the_fleet_maps_it(runtime: str) -> None:
    from test_validation import VALID

    from fc_provider.function import FunctionProvider

    connection = {"hosts": [{"name": "h", "address": "10.0.0.1", "host_public_key": "ssh-ed25519 AAAA"}]}
    failures = FunctionProvider().check({}, {**VALID, "runtime": runtime, "connection": connection}).failures
    assert [f.property for f in failures] == ["runtime"]
    assert "cannot be built here" in failures[0].reason and "python3.13, nodejs18, nodejs20" in failures[0].reason
    mapped = {**connection, "runtime_images": {runtime: "my/python:1"}}
    assert FunctionProvider().check({}, {**VALID, "runtime": runtime, "connection": mapped}).failures == []
    # Unknown at preview (a new fleet): checked again once known.
    assert FunctionProvider().check({}, {**VALID, "runtime": runtime, "connection": UNKNOWN}).failures == []


@pytest.mark.parametrize("runtime", ["python3.9", "python3.13", "nodejs18", "nodejs20"])
def test_every_runtime_built_here_passes(runtime: str) -> None:
    from test_validation import VALID

    from fc_provider.function import FunctionProvider

    assert FunctionProvider().check({}, {**VALID, "runtime": runtime}).failures == []
