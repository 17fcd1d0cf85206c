"""FC's provision config (PutProvisionConfig, Terraform ``alicloud_fcv3_provision_config``): its rules, read the same
way by the provider (validation at preview) and the agent (the scaler), and the decision of the current target.

- ``target``: the default number of provisioned instances (kept started, like min_instances).
- ``scheduled_actions``: ``{name, start_time, end_time, target, schedule_expression, time_zone}``. The expression is
  FC's ``cron(...)`` with six fields, seconds first (``cron(0 0 22 * * *)``), read by cronsim, in ``time_zone``
  (default UTC). An action takes effect when its schedule fires inside its window [start_time, end_time] and stays
  in effect until another action fires or its window ends. So "50 at 20:00, 10 at 22:00" works as in FC's example.
- ``target_tracking_policies``: ``{name, start_time, end_time, metric_type, metric_target, min_capacity,
  max_capacity, time_zone}``, metric_type one of FC's three, metric_target in (0, 1]. Active inside its window.
- The current target (FC: "the max over the currently effective policies; with none, the configured value"):
  the highest of the action in effect and the active tracking policies' values; with none active, ``target``.

Times are ISO 8601 (``2026-12-01T20:00:00Z``, or without offset in ``time_zone``) or FC's epoch milliseconds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim

from . import cron

METRIC_TYPES = ("ProvisionedConcurrencyUtilization", "CPUUtilization", "GPUMemUtilization")
MAX_TARGET = 10000
MAX_POLICIES = 100
_CRON = re.compile(r"^cron\((.*)\)$", re.S)


class ProvisionConfigError(ValueError):
    """The message names the property (``scheduled_actions[1].schedule_expression``) and the rule."""


def _zone(name: str | None, where: str) -> timezone | ZoneInfo:
    if not name:
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ProvisionConfigError(f"{where}.time_zone {name!r} is not an IANA time zone (e.g. Asia/Shanghai)") \
            from None


def parse_time(value: Any, zone: timezone | ZoneInfo, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value) / 1000, timezone.utc)  # FC's epoch milliseconds
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ProvisionConfigError(f"{where} {value!r} must be ISO 8601 (2026-12-01T20:00:00Z) or epoch "
                                   "milliseconds") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def parse_cron(expression: Any, where: str) -> str:
    """The six fields of ``cron(s m h dom mon dow)``, read by the timer triggers' parser (``cron.parse``)."""
    match = _CRON.match(str(expression or "").strip())
    inner = match.group(1).strip() if match else ""
    if not match or inner.startswith("@") or "=" in inner:  # no descriptors or CRON_TZ: time_zone says the zone
        raise ProvisionConfigError(f"{where} must be cron(<6 fields>), seconds first, e.g. cron(0 0 22 * * *); got "
                                   f"{expression!r}")
    try:
        return cron.parse(inner, field=f"{where} {expression!r}").fields  # type: ignore[return-value]
    except cron.CronError as exc:
        raise ProvisionConfigError(str(exc)) from None


@dataclass(frozen=True)
class Window:
    start: datetime | None
    end: datetime | None

    def contains(self, now: datetime) -> bool:
        return (self.start is None or now >= self.start) and (self.end is None or now < self.end)


@dataclass(frozen=True)
class ScheduledAction:
    name: str
    target: int
    cron: str  # the six fields, seconds first
    zone: timezone | ZoneInfo
    window: Window

    def last_fired(self, now: datetime, horizon: timedelta) -> datetime | None:
        """The latest firing at or before ``now`` inside the window (looked back at most ``horizon``): one step of
        cronsim's reverse iteration, so an every-second schedule costs no more than a daily one."""
        after = now.replace(microsecond=0) + timedelta(seconds=1)  # reverse iteration yields ticks before it
        tick = next(iter(CronSim(self.cron, after.astimezone(self.zone), reverse=True)), None)
        if tick is None or tick < now - horizon or not self.window.contains(tick):
            return None
        return tick


@dataclass(frozen=True)
class TrackingPolicy:
    name: str
    metric_type: str
    metric_target: float
    min_capacity: int
    max_capacity: int
    window: Window


@dataclass(frozen=True)
class ProvisionConfig:
    target: int
    scheduled_actions: tuple[ScheduledAction, ...] = ()
    tracking_policies: tuple[TrackingPolicy, ...] = ()
    always_allocate_cpu: bool = True
    always_allocate_gpu: bool = True


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or not low <= int(value) <= high:
        raise ProvisionConfigError(f"{where} must be an integer from {low} to {high}, got {value!r}")
    return int(value)


def _window(entry: Mapping[str, Any], zone: timezone | ZoneInfo, where: str) -> Window:
    window = Window(parse_time(entry.get("start_time"), zone, f"{where}.start_time"),
                    parse_time(entry.get("end_time"), zone, f"{where}.end_time"))
    if window.start and window.end and window.end <= window.start:
        raise ProvisionConfigError(f"{where}.end_time must be after its start_time")
    return window


def _overlap(a: Window, b: Window) -> bool:
    return (a.start is None or b.end is None or a.start < b.end) and (b.start is None or a.end is None
                                                                      or b.start < a.end)


def parse(config: Mapping[str, Any]) -> ProvisionConfig:
    """The config with every rule checked; ProvisionConfigError names the property and the rule."""
    target = _int(config.get("target", 0) or 0, "target", 0, MAX_TARGET)
    actions, names = [], set()
    raw_actions: Sequence[Mapping[str, Any]] = config.get("scheduled_actions") or []
    if len(raw_actions) > MAX_POLICIES:
        raise ProvisionConfigError(f"scheduled_actions: at most {MAX_POLICIES}")
    for i, entry in enumerate(raw_actions):
        where = f"scheduled_actions[{i}]"
        name = str(entry.get("name") or "")
        if not name or name in names:
            raise ProvisionConfigError(f"{where}.name is required and must be unique; got {name!r}")
        names.add(name)
        zone = _zone(entry.get("time_zone"), where)
        action = ScheduledAction(name, _int(entry.get("target"), f"{where}.target", 0, MAX_TARGET),
                                 parse_cron(entry.get("schedule_expression"), f"{where}.schedule_expression"),
                                 zone, _window(entry, zone, where))
        for other in actions:
            if (other.cron, str(other.zone)) == (action.cron, str(action.zone)) and _overlap(other.window,
                                                                                          action.window):
                raise ProvisionConfigError(f"{where} fires at the same times as scheduled_actions {other.name!r} "
                                           "in an overlapping window: which target would win?")
        actions.append(action)
    policies, names = [], set()
    raw_policies: Sequence[Mapping[str, Any]] = config.get("target_tracking_policies") or []
    if len(raw_policies) > MAX_POLICIES:
        raise ProvisionConfigError(f"target_tracking_policies: at most {MAX_POLICIES}")
    for i, entry in enumerate(raw_policies):
        where = f"target_tracking_policies[{i}]"
        name = str(entry.get("name") or "")
        if not name or name in names:
            raise ProvisionConfigError(f"{where}.name is required and must be unique; got {name!r}")
        names.add(name)
        if entry.get("metric_type") not in METRIC_TYPES:
            raise ProvisionConfigError(f"{where}.metric_type must be one of {', '.join(METRIC_TYPES)}; got "
                                       f"{entry.get('metric_type')!r}")
        metric_target = entry.get("metric_target")
        if isinstance(metric_target, bool) or not isinstance(metric_target, (int, float)) \
                or not 0 < metric_target <= 1:
            raise ProvisionConfigError(f"{where}.metric_target must be in (0, 1] (a utilization such as 0.6); got "
                                       f"{metric_target!r}")
        low = _int(entry.get("min_capacity", 0), f"{where}.min_capacity", 0, MAX_TARGET)
        high = _int(entry.get("max_capacity"), f"{where}.max_capacity", 1, MAX_TARGET)
        if low > high:
            raise ProvisionConfigError(f"{where}.min_capacity ({low}) must not exceed max_capacity ({high})")
        zone = _zone(entry.get("time_zone"), where)
        policy = TrackingPolicy(name, entry["metric_type"], float(metric_target), low, high,
                                _window(entry, zone, where))
        for other in policies:
            if _overlap(other.window, policy.window):
                raise ProvisionConfigError(f"{where} overlaps target_tracking_policies {other.name!r} in time: "
                                           "tracking windows must not overlap (which one would steer?)")
        policies.append(policy)
    return ProvisionConfig(target, tuple(actions), tuple(policies), bool(config.get("always_allocate_cpu", True)),
                           bool(config.get("always_allocate_gpu", True)))


# How far back a schedule is searched for its last firing: a daily or weekly action still counts after a restart.
SCHEDULE_HORIZON = timedelta(days=8)


def scheduled_target(config: ProvisionConfig, now: datetime) -> int | None:
    """The target of the action in effect (the one that fired last inside its window; on a tie the highest), or
    None when no action is in effect."""
    best: tuple[datetime, int] | None = None
    for action in config.scheduled_actions:
        if not action.window.contains(now):
            continue
        fired = action.last_fired(now, SCHEDULE_HORIZON)
        if fired is not None and (best is None or (fired, action.target) > best):
            best = (fired, action.target)
    return best[1] if best else None


def active_policies(config: ProvisionConfig, now: datetime) -> list[TrackingPolicy]:
    return [p for p in config.tracking_policies if p.window.contains(now)]


def tracked(current: int, utilization: float, policy: TrackingPolicy) -> int:
    """FC's rule: current x (metric / metric_target), rounded up, clamped to [min_capacity, max_capacity]. With no
    instance yet, one is assumed so that load can start the climb."""
    wanted = math.ceil(round(max(current, 1) * utilization / policy.metric_target, 9))  # 2 x 0.9 / 0.6 is 3
    return int(min(policy.max_capacity, max(policy.min_capacity, wanted)))


def share(total: int, rank: int, hosts: int) -> int:
    """Host ``rank``'s part of a fleet-wide target: the first ``total % hosts`` hosts take one more."""
    return total // hosts + (1 if rank < total % hosts else 0)
