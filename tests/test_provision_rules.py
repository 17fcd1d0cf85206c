"""fc.ProvisionConfig's rules and the scaler, on a clock the test moves (no sleeps): FC's six-field cron with
seconds first, the action in effect switching the target at the right instants, target tracking scaling out and
in on a synthetic load with the documented window and cooldowns, clamps, shares per host, and bad input naming
the property. The scaler's store is a real SQLite file."""

from __future__ import annotations

from datetime import datetime, timezone
import sqlite3
from pathlib import Path

import pytest

from fc_common import provision as rules
from runtime_agent.events.provision import (
    SCALE_IN_COOLDOWN,
    SCALE_OUT_COOLDOWN,
    WINDOW_SECONDS,
    FunctionScaler,
    ProvisionScalers,
)
from runtime_agent.state.provisionstore import ProvisionRecord, ProvisionStore


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


EVENING = {"target": 1, "scheduled_actions": [
    {"name": "up", "target": 50, "schedule_expression": "cron(0 0 20 * * *)", "time_zone": "Asia/Shanghai"},
    {"name": "down", "target": 10, "schedule_expression": "cron(0 0 22 * * *)", "time_zone": "Asia/Shanghai"}]}


def scaler(config: dict, rank: int = 0, hosts: int = 1) -> FunctionScaler:
    return FunctionScaler(ProvisionRecord("f", config, rank, [f"h{i}" for i in range(hosts)]))


def test_schedules_switch_the_target_at_the_right_instants() -> None:
    s = scaler({**EVENING, "scheduled_actions": [
        {**a, "start_time": "2026-12-01T00:00:00+08:00"} for a in EVENING["scheduled_actions"]]})
    # Shanghai is UTC+8: 20:00 there is 12:00 UTC.
    assert s.decide(at("2026-12-01T11:59:59")) == 1  # the window opened, nothing has fired yet: the default
    assert s.decide(at("2026-12-01T12:00:00")) == 50
    assert s.decide(at("2026-12-01T13:59:59")) == 50
    assert s.decide(at("2026-12-01T14:00:00")) == 10  # the later action is in effect, not the higher one
    assert s.decide(at("2026-12-02T11:59:59")) == 10
    assert s.decide(at("2026-12-02T12:00:00")) == 50


def test_an_action_ends_with_its_window_and_the_default_returns() -> None:
    s = scaler({"target": 2, "scheduled_actions": [
        {"name": "burst", "target": 5, "schedule_expression": "cron(0 30 9 * * *)",
         "start_time": "2026-12-01T09:00:00Z", "end_time": "2026-12-01T10:00:00Z"}]})
    assert [s.decide(at(t)) for t in ("2026-12-01T09:29:59", "2026-12-01T09:30:00", "2026-12-01T09:59:59",
                                      "2026-12-01T10:00:00", "2026-12-02T09:30:00")] == [2, 5, 5, 2, 2]


def test_the_fleet_target_is_shared_by_rank() -> None:
    assert [rules.share(5, r, 3) for r in range(3)] == [2, 2, 1]
    hosts = [scaler({"target": 5}, rank=r, hosts=3) for r in range(3)]
    for h in hosts:
        h.decide(at("2026-12-01T00:00:00"))
    assert sum(h.host_target for h in hosts) == 5


TRACKING = {"target": 2, "target_tracking_policies": [
    {"name": "conc", "metric_type": "ProvisionedConcurrencyUtilization", "metric_target": 0.5, "min_capacity": 1,
     "max_capacity": 8}]}


def run(s: FunctionScaler, start: float, seconds: int, utilization: float) -> list[tuple[float, int]]:
    """Feeds one sample a second and decides each second; returns (time, target) of each decision."""
    out = []
    for t in range(seconds):
        now = start + t
        s.observe("ProvisionedConcurrencyUtilization", utilization, now)
        out.append((now, s.decide(now)))
    return out


def first(decisions: list[tuple[float, int]], target: int) -> float:
    return next(t for t, v in decisions if v == target)


def test_target_tracking_scales_out_after_a_full_window_and_in_after_the_cooldown() -> None:
    s = scaler(TRACKING)
    t0 = at("2026-12-01T00:00:00")
    busy = run(s, t0, 400, 1.0)  # utilization 1.0 against a target of 0.5
    assert {v for t, v in busy if t < t0 + WINDOW_SECONDS - 1} == {2}  # nothing before a full window
    out_1 = first(busy, 4)  # ceil(2 x 1.0 / 0.5)
    assert t0 + WINDOW_SECONDS - 1 <= out_1 <= t0 + WINDOW_SECONDS
    out_2 = first(busy, 8)  # doubled again, once the scale-out cooldown passed
    assert out_2 == out_1 + SCALE_OUT_COOLDOWN
    assert busy[-1][1] == 8 and 16 not in {v for _, v in busy}  # max_capacity clamps
    calm = run(s, t0 + 400, 1500, 0.1) + run(s, t0 + 1900, 700, 0.0)  # the load drops, then stops
    changes = [(t, v) for (t, v), (_, before) in zip(calm, [(0, 8)] + calm) if v != before]
    assert [v for _, v in changes] == sorted((v for _, v in changes), reverse=True)  # only down
    assert changes[0][0] >= out_2 + SCALE_IN_COOLDOWN  # not within a cooldown of the last scale out
    assert changes[0][0] >= t0 + 400 + WINDOW_SECONDS * 0.5  # not before the window forgot most of the load
    gaps = [b[0] - a[0] for a, b in zip(changes, changes[1:])]
    assert all(gap >= SCALE_IN_COOLDOWN for gap in gaps), gaps  # one step per scale-in cooldown
    assert 2 in {v for _, v in changes} and calm[-1][1] == 1  # ceil(x 0.1 / 0.5) reaches 2, idle min_capacity 1


def test_a_metric_nobody_reports_is_said_in_current_error() -> None:
    s = scaler({"target": 1, "target_tracking_policies": [
        {"name": "vram", "metric_type": "GPUMemUtilization", "metric_target": 0.8, "max_capacity": 4}]})
    s.observe("GPUMemUtilization", None, at("2026-12-01T00:00:00"))
    assert s.decide(at("2026-12-01T00:00:00")) == 1
    assert "GPUMemUtilization is not reported" in s.error and "simulated cards" in s.error


def test_scalers_keep_their_configs_in_sqlite_and_tick_on_the_given_clock(tmp_path: Path) -> None:
    clock = [at("2026-12-01T08:59:59")]
    load = {"ProvisionedConcurrencyUtilization": 0.0}
    config = {"target": 1, "scheduled_actions": [
        {"name": "nine", "target": 3, "schedule_expression": "cron(0 0 9 * * *)",
         "start_time": "2026-12-01T00:00:00Z"}]}
    scalers = ProvisionScalers(ProvisionStore(tmp_path / "agent.db"), lambda f, v, w: load, lambda: clock[0])
    scalers.put("f", config, 1, ["a", "b"])
    assert scalers.pool_target("f", None) == 0  # fleet target 1: host rank 1 of 2 keeps none
    clock[0] += 1
    scalers.tick()
    assert scalers.get("f").fleet_target == 3 and scalers.pool_target("f", None) == 1
    again = ProvisionScalers(ProvisionStore(tmp_path / "agent.db"), lambda f, v, w: load, lambda: clock[0])
    again.tick()
    assert again.get("f").record.rank == 1 and again.pool_target("f", "LATEST") == 1  # survives a restart


def test_configs_of_one_function_coexist_per_qualifier_and_an_alias_moves_its_instances(tmp_path: Path) -> None:
    aliases = {"prod": "1", "canary": "1"}
    resolve = (lambda f, q: "LATEST" if q == "LATEST" else aliases.get(q))
    clock = [at("2026-12-01T00:00:00")]
    scalers = ProvisionScalers(ProvisionStore(tmp_path / "agent.db"), lambda f, v, w: {}, lambda: clock[0],
                               resolve=resolve)
    scalers.put("f", {"target": 0}, 0, ["a"])
    scalers.put("f", {"target": 2}, 0, ["a"], qualifier="prod")
    scalers.put("f", {"target": 1}, 0, ["a"], qualifier="canary")
    assert (scalers.pool_target("f", None), scalers.pool_target("f", "1")) == (0, 3)  # two aliases on v1 add up
    aliases["prod"] = "2"
    clock[0] += 1
    scalers.tick()
    assert [scalers.pool_target("f", v) for v in ("1", "2")] == [1, 2]  # prod's instances moved with it
    del aliases["canary"]
    clock[0] += 1
    scalers.tick()
    assert scalers.pool_target("f", "1") == 0
    assert scalers.get("f", "canary").error.startswith("qualifier: alias canary of function f does not exist")
    assert scalers.delete("f", "prod") and scalers.get("f", "prod") is None and scalers.get("f") is not None
    assert scalers.delete("f") and scalers.get("f") is None and scalers.get("f", "canary") is None


def test_a_database_from_before_qualifiers_keeps_its_configs_as_latest(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "agent.db")
    db.execute("CREATE TABLE provision_configs (function TEXT PRIMARY KEY, config TEXT NOT NULL, rank INTEGER NOT "
               "NULL, hosts TEXT NOT NULL, fleet TEXT NOT NULL DEFAULT '{}')")
    db.execute("INSERT INTO provision_configs VALUES ('f', '{\"target\": 2}', 0, '[\"a\"]', '{}')")
    db.commit()
    db.close()
    store = ProvisionStore(tmp_path / "agent.db")
    [record] = store.list()
    assert (record.function, record.qualifier, record.config) == ("f", "LATEST", {"target": 2})
    store.put(ProvisionRecord("f", {"target": 1}, 0, ["a"], qualifier="prod"))
    assert [r.key for r in ProvisionStore(tmp_path / "agent.db").list()] == [("f", "LATEST"), ("f", "prod")]


@pytest.mark.parametrize(("config", "phrase"), [
    ({"target": 10001}, "target must be an integer from 0 to 10000"),
    ({"scheduled_actions": [{"name": "a", "target": 1, "schedule_expression": "0 0 22 * * *"}]},
     "scheduled_actions[0].schedule_expression must be cron(<6 fields>)"),
    ({"scheduled_actions": [{"name": "a", "target": 1, "schedule_expression": "cron(0 22 * * *)"}]},
     "'cron(0 22 * * *)' has 5 fields; FC's has 6"),
    ({"scheduled_actions": [{"name": "a", "target": 1, "schedule_expression": "cron(0 0 25 * * *)"}]},
     "scheduled_actions[0].schedule_expression 'cron(0 0 25 * * *)'"),
    ({"scheduled_actions": [
        {"name": "a", "target": 1, "schedule_expression": "cron(0 0 9 * * *)"},
        {"name": "b", "target": 2, "schedule_expression": "cron(0 0 9 * * *)"}]}, "overlapping window"),
    ({"scheduled_actions": [{"name": "a", "target": 1, "schedule_expression": "cron(0 0 9 * * *)",
                             "time_zone": "Mars/Olympus"}]}, "time_zone 'Mars/Olympus' is not an IANA"),
    ({"scheduled_actions": [{"name": "a", "target": 1, "schedule_expression": "cron(0 0 9 * * *)",
                             "start_time": "2026-12-02T00:00:00Z", "end_time": "2026-12-01T00:00:00Z"}]},
     "end_time must be after its start_time"),
    ({"target_tracking_policies": [{"name": "p", "metric_type": "GPUSmUtilization", "metric_target": 0.5,
                                    "max_capacity": 2}]}, "metric_type must be one of"),
    ({"target_tracking_policies": [{"name": "p", "metric_type": "CPUUtilization", "metric_target": 1.5,
                                    "max_capacity": 2}]}, "metric_target must be in (0, 1]"),
    ({"target_tracking_policies": [{"name": "p", "metric_type": "CPUUtilization", "metric_target": 0,
                                    "max_capacity": 2}]}, "metric_target must be in (0, 1]"),
    ({"target_tracking_policies": [{"name": "p", "metric_type": "CPUUtilization", "metric_target": 0.5,
                                    "min_capacity": 3, "max_capacity": 2}]}, "must not exceed max_capacity"),
    ({"target_tracking_policies": [
        {"name": "p", "metric_type": "CPUUtilization", "metric_target": 0.5, "max_capacity": 2},
        {"name": "q", "metric_type": "CPUUtilization", "metric_target": 0.7, "max_capacity": 2}]}, "overlaps"),
])
def test_bad_provision_configs_name_the_property(config: dict, phrase: str) -> None:
    with pytest.raises(rules.ProvisionConfigError) as caught:
        rules.parse(config)
    assert phrase in str(caught.value), str(caught.value)


def test_the_resource_checks_at_preview_naming_the_property() -> None:
    import fc_provider as fc
    from fc_provider._model.validation import UNKNOWN
    from fc_provider.provision_config import ProvisionConfigProvider

    args = fc.ProvisionConfigArgs(target=1, scheduled_actions=[fc.ScheduledActionArgs(
        name="evening", schedule_expression="cron(0 0 20 * * *)", target=5, time_zone="Asia/Shanghai")])
    news = {"function_name": "f", "qualifier": "LATEST", "target": args.target,
            "scheduled_actions": args.scheduled_actions, "target_tracking_policies": args.target_tracking_policies}
    assert news["scheduled_actions"] == [{"name": "evening", "schedule_expression": "cron(0 0 20 * * *)",
                                          "target": 5, "time_zone": "Asia/Shanghai"}]
    assert ProvisionConfigProvider().check({}, news).failures == []
    bad = {**news, "target_tracking_policies": [{"name": "p", "metric_type": "CPUUtilization", "metric_target": 2.0,
                                                 "max_capacity": 3}]}
    (failure,) = ProvisionConfigProvider().check({}, bad).failures
    assert failure.property == "target_tracking_policies" and "(0, 1]" in failure.reason
    assert ProvisionConfigProvider().check({}, {**news, "qualifier": "prod"}).failures == []  # an alias
    assert ProvisionConfigProvider().check({}, {**news, "qualifier": UNKNOWN}).failures == []  # alias_name at preview
    (failure,) = ProvisionConfigProvider().check({}, {**news, "qualifier": "1"}).failures
    assert failure.property == "qualifier" and "FC provisions LATEST or an alias, not a version" in failure.reason
    (failure,) = ProvisionConfigProvider().check({}, {**news, "qualifier": "-x"}).failures
    assert failure.property == "qualifier" and "neither LATEST nor an alias name" in failure.reason
