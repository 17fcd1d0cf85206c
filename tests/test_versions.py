"""Versions, aliases and qualifier resolution on the agent's own store (real SQLite, no host needed): ids that are
never reused, the alias rules, the refusal to delete a version an alias uses, and the weighted split."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from runtime_agent.errors import BadRequest, Conflict, NotFound
from runtime_agent.state.versions import LATEST, QualifierResolver, Versions

SPEC = {"runtime": "python3.11", "handler": "index.handler"}
# Significance of every chi-square test here: a correct router fails it once in a thousand seeds; the seeds are
# fixed, so a run is reproducible.
ALPHA = 0.001


def chi_square_p(observed: list[int], expected_shares: list[float]) -> float:
    """P-value of Pearson's chi-square statistic with one degree of freedom (two categories): erfc(sqrt(x/2))."""
    total = sum(observed)
    statistic = sum((o - total * s) ** 2 / (total * s) for o, s in zip(observed, expected_shares))
    assert len(observed) == 2
    return math.erfc(math.sqrt(statistic / 2))


@pytest.fixture
def versions(tmp_path: Path) -> Versions:
    store = Versions(tmp_path / "agent.db")
    yield store
    store.close()


def test_ids_increase_and_are_never_reused(versions: Versions, tmp_path: Path) -> None:
    assert [versions.publish("f", SPEC, "a" * 64, f"v{i}").version_id for i in (1, 2, 3)] == [1, 2, 3]
    versions.delete("f", "3")
    assert versions.publish("f", SPEC, "a" * 64, "").version_id == 4
    versions.drop_function("f")
    assert versions.publish("f", SPEC, "a" * 64, "").version_id == 5  # the function came back: still no reuse
    with pytest.raises(Conflict, match="never reused"):
        versions.publish("f", SPEC, "a" * 64, "", version_id="5")
    assert versions.publish("f", SPEC, "a" * 64, "", version_id="9").version_id == 9
    versions.close()
    reopened = Versions(tmp_path / "agent.db")  # what a restarted agent sees
    assert [v.version_id for v in reopened.list("f")] == [5, 9] and reopened.last_id("f") == 9
    reopened.close()


def test_a_version_keeps_its_snapshot(versions: Versions) -> None:
    spec = dict(SPEC)
    v1 = versions.publish("f", spec, "a" * 64, "first")
    spec["handler"] = "other.handler"  # LATEST moves on
    assert versions.get("f", "1").spec["handler"] == "index.handler" and v1.to_json()["version_id"] == "1"


def test_alias_rules_name_the_property(versions: Versions) -> None:
    for _ in range(3):
        versions.publish("f", SPEC, "a" * 64, "")
    cases = [
        ("LATEST", {"version_id": "1"}, BadRequest, "alias_name"),
        ("9lives", {"version_id": "1"}, BadRequest, "alias_name"),
        ("prod", {"version_id": "7"}, NotFound, "version 7"),
        ("prod", {"version_id": "LATEST"}, BadRequest, "version_id"),
        ("prod", {"version_id": "1", "additional_version_weight": {"2": 1.5}}, BadRequest, "from 0 to 1"),
        ("prod", {"version_id": "1", "additional_version_weight": {"2": -0.1}}, BadRequest, "from 0 to 1"),
        ("prod", {"version_id": "1", "additional_version_weight": {"2": 0.1, "3": 0.1}}, BadRequest, "at most one"),
        ("prod", {"version_id": "1", "additional_version_weight": {"1": 0.1}}, BadRequest, "own version"),
        ("prod", {"version_id": "1", "additional_version_weight": {"8": 0.1}}, NotFound, "version 8"),
    ]
    for name, body, error, words in cases:
        with pytest.raises(error, match=words):
            versions.put_alias("f", name, body)
    assert versions.list_aliases("f") == []


def test_a_version_an_alias_uses_is_not_deleted(versions: Versions) -> None:
    for _ in range(2):
        versions.publish("f", SPEC, "a" * 64, "")
    versions.put_alias("f", "prod", {"version_id": "1", "additional_version_weight": {"2": 0.1}})
    for used in ("1", "2"):
        with pytest.raises(Conflict, match="used by alias prod"):
            versions.delete("f", used)
    versions.put_alias("f", "prod", {"version_id": "2"})  # promote: v1 is free now
    versions.delete("f", "1")
    assert [v.version_id for v in versions.list("f")] == [2]


def test_qualifiers_resolve_and_unknown_ones_are_fc_not_found_errors(versions: Versions) -> None:
    versions.publish("f", SPEC, "a" * 64, "")
    versions.put_alias("f", "prod", {"version_id": "1"})
    resolver = QualifierResolver(versions, random.Random(1))
    assert [resolver.resolve("f", q) for q in (None, "", "LATEST", "1", "prod")] == [LATEST, LATEST, LATEST, "1",
                                                                                      "1"]
    for qualifier, code in (("2", "VersionNotFound"), ("staging", "AliasNotFound")):
        for call in (resolver.resolve, resolver.check):
            with pytest.raises(NotFound) as info:
                call("f", qualifier)
            assert info.value.code == code and qualifier in info.value.message
    for qualifier in (None, "LATEST", "1", "prod"):
        resolver.check("f", qualifier)


@pytest.mark.parametrize("weight, seed", [(0.1, 11), (0.5, 12), (0.01, 13)])
def test_weighted_split_passes_a_chi_square_test(versions: Versions, weight: float, seed: int) -> None:
    for _ in range(2):
        versions.publish("f", SPEC, "a" * 64, "")
    versions.put_alias("f", "prod", {"version_id": "1", "additional_version_weight": {"2": weight}})
    resolver = QualifierResolver(versions, random.Random(seed))
    n = 20000
    served = [resolver.resolve("f", "prod") for _ in range(n)]
    observed = [served.count("1"), served.count("2")]
    assert observed[0] + observed[1] == n
    assert chi_square_p(observed, [1 - weight, weight]) > ALPHA, observed


def test_weights_zero_and_one_are_exact(versions: Versions) -> None:
    for _ in range(2):
        versions.publish("f", SPEC, "a" * 64, "")
    resolver = QualifierResolver(versions, random.Random(3))
    versions.put_alias("f", "prod", {"version_id": "1", "additional_version_weight": {"2": 0}})
    assert {resolver.resolve("f", "prod") for _ in range(500)} == {"1"}
    versions.put_alias("f", "prod", {"version_id": "1", "additional_version_weight": {"2": 1}})
    assert {resolver.resolve("f", "prod") for _ in range(500)} == {"2"}


def test_the_chi_square_test_rejects_a_biased_router() -> None:
    """The check has power: a router that sends 13 % instead of 10 % over 20000 calls fails it."""
    assert chi_square_p([17400, 2600], [0.9, 0.1]) < ALPHA


def test_the_invoke_path_reads_the_qualifier_from_the_query() -> None:
    from runtime_agent.api.invoke import _qualifier

    assert [_qualifier(q) for q in ("", "qualifier=prod", "qualifier=", "x=1&qualifier=a%2Db", "x=1")] == \
        [None, "prod", None, "a-b", None]
