"""Provisioned instances over time: one ``FunctionScaler`` per function and qualifier with a provision config decides
the fleet-wide target (fc_common.provision: the scheduled action in effect, target tracking, else the default) and
this host's share of it; the facade keeps that many instances started, like min_instances.

Target tracking, our documented choices (FC documents none):
- the metric is sampled each tick (``TICK_SECONDS``) and averaged over ``WINDOW_SECONDS`` (60 s); a policy acts only
  on a full window, so one spike does not scale;
- scale out when the average exceeds metric_target: to ceil(current x average / metric_target), at most every
  ``SCALE_OUT_COOLDOWN`` (60 s);
- scale in when the average is below ``SCALE_IN_RATIO`` (0.9, as AWS) x metric_target, by the same formula, at
  most every ``SCALE_IN_COOLDOWN`` (300 s) and never within one of a scale out;
- always clamped to [min_capacity, max_capacity]. ``current`` is the fleet target last decided.

Once per fleet: every host of the function gets the same config, the hosts' names in order, its rank, the peers'
addresses and a peer key. The lowest-ranked host that answers decides the fleet target from the fleet's samples,
the others follow its decision (events/provision_fleet.py); host ``rank`` keeps ``share(target, rank, hosts)``
instances. A config without peers (one host) decides alone. See docs/architecture.md.

Qualifiers, as FC: LATEST or an alias (FC binds provision configs to aliases, never to a version directly). Each
tick resolves the alias to the version it points at (its main one: a canary's additional version is served
elastically) and that version's pool keeps the instances, so when the alias moves they move with it. Configs of one
function coexist, one per qualifier; two resolving to the same version add up in its pool.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from fc_common import provision as rules

from ..state.provisionstore import LATEST, ProvisionRecord, ProvisionStore

log = logging.getLogger("fc-agent")

TICK_SECONDS = 1.0
WINDOW_SECONDS = 60.0
SCALE_OUT_COOLDOWN = 60.0
SCALE_IN_COOLDOWN = 300.0
SCALE_IN_RATIO = 0.9


@dataclass(frozen=True)
class Tuning:
    window: float = WINDOW_SECONDS
    scale_out_cooldown: float = SCALE_OUT_COOLDOWN
    scale_in_cooldown: float = SCALE_IN_COOLDOWN
    scale_in_ratio: float = SCALE_IN_RATIO

    @classmethod
    def from_config(cls, raw: Mapping[str, Any] | None) -> "Tuning":
        """The agent config's ``provision_tuning`` ({window_seconds, scale_out_cooldown_seconds,
        scale_in_cooldown_seconds}, each > 0); null: the documented defaults. Shorter ones serve tests and demos."""
        names = {"window_seconds": "window", "scale_out_cooldown_seconds": "scale_out_cooldown",
                 "scale_in_cooldown_seconds": "scale_in_cooldown"}
        values = {}
        for key, value in (raw or {}).items():
            if key not in names or isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"provision_tuning.{key}: expected one of {sorted(names)} with a number of "
                                 f"seconds > 0, got {value!r}")
            values[names[key]] = float(value)
        return cls(**values)


def _moment(value: Any) -> float:
    return float("-inf") if value is None else float(value)


@dataclass
class FunctionScaler:
    record: ProvisionRecord
    tuning: Tuning = field(default_factory=Tuning)
    config: rules.ProvisionConfig = field(init=False)
    fleet_target: int = field(init=False)
    error: str | None = None
    seq: int = 0  # the fleet decision's number: the decider adds one on each change (events/provision_fleet.py)
    decider: str | None = None  # the host whose decision this one follows (itself when deciding); None: alone
    version: str | None = None  # the version whose pool keeps the instances (LATEST, an id); None: alias gone
    _samples: dict[str, deque] = field(default_factory=dict)
    _last_out: float = float("-inf")
    _last_in: float = float("-inf")

    def __post_init__(self) -> None:
        self.config = rules.parse(self.record.config)
        self.fleet_target = self.config.target

    @property
    def host_target(self) -> int:
        return rules.share(self.fleet_target, self.record.rank, max(1, len(self.record.hosts)))

    def state(self) -> dict[str, Any]:
        """The decision as peers exchange it: the target, its number, why a policy cannot act, the cooldowns."""
        finite = (lambda t: None if t == float("-inf") else t)
        return {"target": self.fleet_target, "seq": self.seq, "error": self.error,
                "last_out": finite(self._last_out), "last_in": finite(self._last_in)}

    def adopt(self, state: Mapping[str, Any]) -> None:
        """Takes a decision made by another host (``state()``'s shape): the target and its cooldowns."""
        self.fleet_target, self.seq = int(state["target"]), int(state["seq"])
        self.error = state.get("error")
        self._last_out, self._last_in = _moment(state.get("last_out")), _moment(state.get("last_in"))

    def observe(self, metric_type: str, value: float | None, now: float) -> None:
        samples = self._samples.setdefault(metric_type, deque())
        if value is not None:
            samples.append((now, value))
        while samples and samples[0][0] < now - self.tuning.window:
            samples.popleft()

    def _average(self, metric_type: str, now: float) -> float | None:
        samples = self._samples.get(metric_type) or deque()
        if not samples or samples[0][0] > now - self.tuning.window + TICK_SECONDS * 1.5:
            return None  # not a full window yet
        return sum(v for _, v in samples) / len(samples)

    def decide(self, now: float) -> int:
        """The fleet target at ``now`` (epoch seconds); remembers it as the next ``current``."""
        moment = datetime.fromtimestamp(now, timezone.utc)
        candidates: list[int] = []
        scheduled = rules.scheduled_target(self.config, moment)
        if scheduled is not None:
            candidates.append(scheduled)
        errors = []
        for policy in rules.active_policies(self.config, moment):
            value = self._track(policy, now, errors)
            candidates.append(value)
        self.error = "; ".join(errors) or None
        self.fleet_target = max(candidates) if candidates else self.config.target
        return self.fleet_target

    def _track(self, policy: rules.TrackingPolicy, now: float, errors: list[str]) -> int:
        """The policy's value: its clamp of the current target, moved by the windowed metric past the cooldowns."""
        current = min(policy.max_capacity, max(policy.min_capacity, self.fleet_target))
        average = self._average(policy.metric_type, now)
        if average is None:
            if not self._samples.get(policy.metric_type):
                why = ("simulated cards and hosts without NVML report no GPU memory"
                       if policy.metric_type == "GPUMemUtilization" else "no samples yet")
                errors.append(f"{policy.name}: {policy.metric_type} is not reported ({why})")
            return current
        wanted = rules.tracked(self.fleet_target, average, policy)
        if average > policy.metric_target and wanted > current:
            if now - self._last_out >= self.tuning.scale_out_cooldown:
                self._last_out = now
                return wanted
        elif average < policy.metric_target * self.tuning.scale_in_ratio and wanted < current:
            quiet = min(now - self._last_out, now - self._last_in)
            if quiet >= self.tuning.scale_in_cooldown:
                self._last_in = now
                return wanted
        return current


class ProvisionScalers:
    """The scalers of this host's functions, their configs kept in SQLite, ticked by the facade's reaper."""

    def __init__(self, store: ProvisionStore, metrics: Callable[[str, str, set[str]], Mapping[str, float | None]],
                 clock: Callable[[], float], tuning: Tuning | None = None,
                 resolve: Callable[[str, str], str | None] = lambda _f, q: q) -> None:
        self._store = store
        self._metrics = metrics  # (function, version, metric types) -> current values, None where not reported
        self._clock = clock
        self._tuning = tuning or Tuning()
        self._resolve = resolve  # (function, qualifier) -> the version its instances belong to; None: no such alias
        self._scalers: dict[tuple[str, str], FunctionScaler] = {}
        self._lock = threading.Lock()
        self._next_tick = 0.0
        # The fleet's exchange (events/provision_fleet.FleetDecisions), set by the facade; None: each host alone.
        self.fleet: Any = None
        for record in store.list():
            self._scalers[record.key] = FunctionScaler(record, self._tuning)

    def put(self, function: str, config: dict[str, Any], rank: int, hosts: list[str],
            fleet: dict[str, Any] | None = None, qualifier: str = LATEST) -> ProvisionRecord:
        record = ProvisionRecord(function, config, rank, hosts, fleet or {}, qualifier)
        scaler = FunctionScaler(record, self._tuning)  # parses: a bad config raises before anything is stored
        self._store.put(record)
        with self._lock:
            self._scalers[record.key] = scaler
        self.tick(force=True)
        return record

    def delete(self, function: str, qualifier: str | None = None) -> bool:
        """One config, or with no qualifier all of the function's."""
        with self._lock:
            for key in [k for k in self._scalers if k[0] == function and qualifier in (None, k[1])]:
                self._scalers.pop(key)
        return self._store.delete(function, qualifier)

    def get(self, function: str, qualifier: str = LATEST) -> FunctionScaler | None:
        with self._lock:
            return self._scalers.get((function, qualifier))

    def of_version(self, function: str, version: str | None) -> list[FunctionScaler]:
        """The configs whose instances the pool of ``version`` (None: LATEST) keeps now, by qualifier."""
        version = version or LATEST
        with self._lock:
            return [s for (f, _q), s in sorted(self._scalers.items()) if f == function and s.version == version]

    def pool_target(self, function: str, version: str | None) -> int:
        """The instances this host keeps started in the pool of ``version``: its share of each config on it."""
        return sum(s.host_target for s in self.of_version(function, version))

    def tick(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now < self._next_tick:
            return
        self._next_tick = now + TICK_SECONDS
        with self._lock:
            scalers = list(self._scalers.items())
        for (function, qualifier), scaler in scalers:
            try:
                self._follow(scaler)
                wanted = {p.metric_type for p in scaler.config.tracking_policies}
                values = self._metrics(function, scaler.version, wanted) if wanted and scaler.version else {}
                before = scaler.fleet_target
                if self.fleet is None or not self.fleet.step(scaler, values, now):
                    for metric_type in wanted:
                        scaler.observe(metric_type, values.get(metric_type), now)
                    scaler.decide(now)
                if scaler.version is None:  # after decide(), which sets the policies' error
                    scaler.error = (f"qualifier: alias {qualifier} of function {function} does not exist (deleted?): "
                                    "no instances are provisioned for it")
                if scaler.fleet_target != before:
                    log.info("provision: %s (%s) target %d -> %d (this host keeps %d; decided by %s)", function,
                             qualifier, before, scaler.fleet_target, scaler.host_target,
                             scaler.decider or "this host alone")
            except Exception:  # noqa: BLE001 - one function's scaler must not stop the others
                log.exception("provision scaler: %s (%s)", function, qualifier)

    def _follow(self, scaler: FunctionScaler) -> None:
        """Resolves the qualifier again: an alias that moved takes its provisioned instances to its new version."""
        version = self._resolve(scaler.record.function, scaler.record.qualifier)
        if version != scaler.version and scaler.version is not None:
            log.info("provision: %s (%s) now provisions version %s (was %s)", scaler.record.function,
                     scaler.record.qualifier, version, scaler.version)
        scaler.version = version
