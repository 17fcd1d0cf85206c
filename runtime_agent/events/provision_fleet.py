"""Target tracking decided once per fleet: the hosts of a function exchange their samples and follow one decider.

Every host of a function with a provision config holds the same config, the hosts' names in rank order, their
addresses (``peers``) and a ``peer_key``. Each tick (provision.TICK_SECONDS) a host measures its sample (the
tracked metrics' values, its live instances, the requests in flight on them, the instance concurrency), then:

1. a host of rank r posts the sample to the hosts of lower rank, in rank order (``POST /_fc/provision-samples``
   on the invoke port, HMAC-signed with the peer key, as the timer triggers' claims: events/peerclaim.py), and stops
   at the first that answers. The answer carries the decision that host holds (the fleet target, its sequence
   number, the cooldowns, current_error): the poster adopts it unless its own decision has a higher number (a
   stale answer). A peer that does not answer is passed over for ``DOWN_RETRY`` seconds;
2. a host that no lower-ranked host answers (rank 0 always) decides: each tick it turns the latest sample of every
   host (its own and those posted to it in the last ``FRESH_TICKS`` ticks) into one fleet-wide value per metric
   (fleet_value), feeds it to its FunctionScaler (the window, cooldowns and clamps of events/provision.py
   unchanged) and numbers each change of the target one higher.

So rank 0 decides while it is up; when it is down, rank 1 decides (its followers' posts reach it after their
DOWN_RETRY), and so on; a follower never decides on its own samples alone while a lower-ranked host answers.
A host that decided while a lower one was away carries that decision in its posts: the lower host, back, takes it
when its number is higher (a restarted decider starts at 0), so the fleet keeps its target and cooldowns across a
failover. A follower that reaches a lower-ranked follower (not the decider) relays its samples through it: every
post carries the fresh samples its sender holds. Hosts' clocks must agree to well under a tick (NTP), as for timers.
Each config of a function (one per qualifier) is its own exchange: posts carry the qualifier (LATEST when absent,
as from an agent from before qualifiers) and samples are kept per (function, qualifier).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from typing import Any, Callable, Mapping

from fc_common import provision as rules

from . import peerclaim
from .provision import TICK_SECONDS, FunctionScaler

log = logging.getLogger("fc-agent")

SAMPLES_PATH = "/_fc/provision-samples"
DOWN_RETRY = 5.0  # seconds a peer that did not answer is passed over
FRESH_TICKS = 3  # a peer's sample counts this many ticks after it arrived
RAW_KEYS = ("in_flight", "instances", "concurrency")  # what ProvisionMetrics measures besides the metrics


def samples_mac(key: str, body: Mapping[str, Any]) -> str:
    signed = json.dumps({k: v for k, v in body.items() if k != "mac"}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key.encode(), signed.encode(), hashlib.sha256).hexdigest()


def config_digest(config: Mapping[str, Any]) -> str:
    """Decisions are exchanged only between hosts holding the same config (one being updated may lag)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def sample_of(values: Mapping[str, Any]) -> dict[str, Any]:
    return {"values": {k: values[k] for k in rules.METRIC_TYPES if k in values},
            **{k: values[k] for k in RAW_KEYS if k in values}}


def fleet_value(metric_type: str, samples: list[Mapping[str, Any]], fleet_target: int) -> float | None:
    """One tick's fleet-wide value from the hosts' samples: provisioned-concurrency utilization is all the requests
    in flight over the fleet's provisioned slots (fleet target x instance concurrency); CPU and GPU memory
    utilization are the hosts' values weighted by their live instances. None when no host reports the metric."""
    if metric_type == "ProvisionedConcurrencyUtilization" and any("in_flight" in s for s in samples):
        concurrency = max(int(s.get("concurrency") or 1) for s in samples)
        return sum(float(s.get("in_flight") or 0) for s in samples) / (max(1, fleet_target) * concurrency)
    reported = [(float(s["values"][metric_type]), max(1, int(s.get("instances") or 0)))
                for s in samples if (s.get("values") or {}).get(metric_type) is not None]
    if not reported:
        return None
    return sum(v * w for v, w in reported) / sum(w for _, w in reported)


class FleetDecisions:
    def __init__(self, me: str, scalers: Callable[[str, str], FunctionScaler | None],
                 clock: Callable[[], float]) -> None:
        self._me = me
        self._scalers = scalers  # (function, qualifier) -> its scaler
        self._clock = clock
        # (function, qualifier) -> host -> (arrived, sample)
        self._received: dict[tuple[str, str], dict[str, tuple[float, dict]]] = {}
        self._down: dict[str, float] = {}  # peer name -> passed over until
        self._lock = threading.Lock()

    @staticmethod
    def shared(scaler: FunctionScaler) -> bool:
        return bool(scaler.record.fleet.get("peers")) and len(scaler.record.hosts) > 1

    def step(self, scaler: FunctionScaler, values: Mapping[str, Any], now: float) -> bool:
        """One tick of ``scaler`` across the fleet; False when its config has no peers (it decides alone)."""
        if not self.shared(scaler):
            return False
        record, sample = scaler.record, sample_of(values)
        peers = {p["name"]: p for p in record.fleet["peers"]}
        for name in record.hosts[:record.rank]:
            peer = peers.get(name)
            if peer is None or self._down.get(name, float("-inf")) > now:
                continue
            answer = self._post(peer, scaler, sample)
            if answer is None:
                continue
            self._down.pop(name, None)
            with self._lock:
                scaler.decider = str(answer.get("decider") or name)
                theirs = answer.get("decision")
                if theirs and answer.get("config") == config_digest(record.config) and int(theirs["seq"]) >= scaler.seq:
                    scaler.adopt(theirs)
            return True
        with self._lock:  # no lower-ranked host answers: this one decides
            self._decide(scaler, sample, now)
        return True

    def _decide(self, scaler: FunctionScaler, sample: dict[str, Any], now: float) -> None:
        fresh = now - FRESH_TICKS * TICK_SECONDS
        others = [s for host, (at, s) in self._received.get(scaler.record.key, {}).items()
                  if at >= fresh and host in scaler.record.hosts and host != self._me]
        samples = [sample, *others]
        for metric_type in {p.metric_type for p in scaler.config.tracking_policies}:
            scaler.observe(metric_type, fleet_value(metric_type, samples, scaler.fleet_target), now)
        before = scaler.fleet_target
        if scaler.decide(now) != before:
            scaler.seq += 1
            log.info("provision: %s (%s) decided from %d hosts' samples (decision %d)", scaler.record.function,
                     scaler.record.qualifier, len(samples), scaler.seq)
        scaler.decider = self._me

    def _post(self, peer: dict[str, Any], scaler: FunctionScaler, sample: dict[str, Any]) -> dict[str, Any] | None:
        """The peer's answer; {} when it answered but refused (it is up: nobody decides on a doubt); None when it is
        down (passed over for a while) or does not hold the config (404)."""
        record = scaler.record
        with self._lock:
            fresh = self._clock() - FRESH_TICKS * TICK_SECONDS
            relayed = {h: s for h, (at, s) in self._received.get(record.key, {}).items()
                       if at >= fresh and h not in (self._me, peer["name"])}
            body: dict[str, Any] = {"function": record.function, "qualifier": record.qualifier, "from": self._me,
                                    "config": config_digest(record.config), "decision": scaler.state(),
                                    "samples": {**relayed, self._me: sample}}
        body["mac"] = samples_mac(str(record.fleet.get("peer_key") or ""), body)
        try:
            status, data = peerclaim.exchange(peer, SAMPLES_PATH, body)
        except peerclaim.PeerDown:
            self._down[peer["name"]] = self._clock() + DOWN_RETRY
            return None
        if status == 404:
            return None
        if status != 200:
            log.warning("provision %s: peer %s refused the samples: %s %s", record.function, peer["name"], status,
                        data[:200])
            return {}
        try:
            answer = json.loads(data)
            return answer if isinstance(answer, dict) else {}
        except ValueError:
            return {}

    def receive(self, request: Mapping[str, Any]) -> dict[str, Any] | None:
        """A peer's samples: kept for the decision, answered with the decision this host holds. None when this host
        holds no config for the function or the sender is not one of its hosts; PermissionError on a bad MAC."""
        function, sender = str(request["function"]), str(request["from"])
        qualifier = str(request.get("qualifier") or "LATEST")
        scaler = self._scalers(function, qualifier)
        if scaler is None or sender not in scaler.record.hosts or sender == self._me:
            return None
        key = str(scaler.record.fleet.get("peer_key") or "")
        if not key or not hmac.compare_digest(samples_mac(key, request), str(request.get("mac"))):
            raise PermissionError(f"samples of {function} ({qualifier}) are not signed with its provision config's "
                                  "peer key")
        samples, digest = request["samples"], config_digest(scaler.record.config)
        if not isinstance(samples, dict):
            raise ValueError("samples must be an object of host -> sample")
        now = self._clock()
        with self._lock:
            got = self._received.setdefault((function, qualifier), {})
            for host, sample in samples.items():
                if host in scaler.record.hosts and host != self._me and isinstance(sample, dict):
                    got[host] = (now, sample)
            theirs = request.get("decision")
            if isinstance(theirs, dict) and request.get("config") == digest and int(theirs["seq"]) > scaler.seq:
                scaler.adopt(theirs)  # decided while this host was away (restarted, or out of reach)
            return {"decider": scaler.decider or self._me, "config": digest, "decision": scaler.state()}
