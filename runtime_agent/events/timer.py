"""Timer triggers: each tick fires once across the hosts that carry the trigger, not once per host.

Every host that runs the function holds the trigger and its ``peers`` (those hosts, ordered by name; the
provider sends the list and a per-trigger ``peer_key``). A host's rank is its place in that list.

For a scheduled instant T (keyed by its UTC timestamp), the host of rank r acts at T + r x HANDOVER:

1. it records the claim (trigger id, T) -> itself in its own SQLite, unless a holder is recorded already (a peer
   claimed T here first): then it stops;
2. it asks every other peer, in rank order, to record the same claim (``POST /_fc/timer-claims`` on the invoke
   port, HMAC-signed with the trigger's peer_key). A peer answers the holder it has for T: the asker when T was
   free there, else the host that got it first. A peer that does not answer within peerclaim.CLAIM_TIMEOUT is skipped;
3. it fires only when no peer named another holder.

So the host of rank 0 fires every tick while it is up (its claim reaches the others before their turn); when it
is down, rank 1 takes over one HANDOVER later, and so on. A tick is never fired twice while the hosts can reach
each other: whoever fires T recorded T on every reachable peer first, and any later claimant finds it recorded on
at least one of them. Two hosts that are both alive but cannot reach each other (a partition) may both fire.
A tick may be lost only if two claimants race within the same instant and each records itself first on a
different peer (it needs a host stalled for a whole HANDOVER).

Missed ticks: when the agent starts, the last tick before now (within one period, after the trigger was
created) is claimed like any other: made up once if no host fired it, never as a burst; older ones are dropped.
Ticks that fall due while the scheduler is stalled are skipped, except the first. ``enable: false`` stops ticks.
The event is FC's ``{"triggerTime": T (UTC, whole seconds), "triggerName", "payload"}``; hosts' clocks must agree
to well under HANDOVER (NTP).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from fc_common import cron

from ..state.triggers import TriggerRecord, TriggerStore
from . import peerclaim

log = logging.getLogger("fc-agent")

HANDOVER = 1.0  # seconds between the turns of two ranks
STALE = 1.0  # a tick whose turn passed more than this long ago is skipped (no bursts)
KEEP_FIRINGS = 7 * 86400.0
CLAIM_PATH = "/_fc/timer-claims"


@dataclass
class _Timer:
    record: TriggerRecord
    schedule: cron.Schedule
    rank: int
    peers: list[dict[str, Any]]  # the others, in rank order
    next_tick: datetime
    due: float = field(init=False)

    def __post_init__(self) -> None:
        self.due = self.next_tick.timestamp() + self.rank * HANDOVER


def claim_mac(key: str, trigger_id: str, scheduled: float, holder: str) -> str:
    return hmac.new(key.encode(), f"{trigger_id}|{scheduled:.3f}|{holder}".encode(), hashlib.sha256).hexdigest()


def event_of(record: TriggerRecord, tick: datetime) -> bytes:
    return json.dumps({"triggerTime": tick.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "triggerName": record.name, "payload": record.config.get("payload") or ""}).encode()


class TimerScheduler:
    def __init__(self, store: TriggerStore, host_name: str, fire: Callable[[TriggerRecord, bytes], Any]) -> None:
        self._store = store
        self._me = host_name
        self._fire = fire
        self._timers: dict[str, _Timer] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._loaded = False
        self._thread = threading.Thread(target=self._loop, name="timers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    # the set of timers ----------------------------------------------------------------------------------------
    def update(self, records: list[TriggerRecord]) -> None:
        """Subscribed to the trigger set: called with every trigger now and after each change."""
        now = datetime.now(timezone.utc)
        catch_up = not self._loaded  # the agent just started: the last tick before now may have been missed
        self._loaded = True
        timers: dict[str, _Timer] = {}
        with self._lock:
            for record in records:
                if record.type != "timer" or record.config.get("enable", True) is False:
                    continue
                old = self._timers.get(record.id)
                if old is not None and old.record.last_modified_time == record.last_modified_time:
                    timers[record.id] = old
                    continue
                try:
                    schedule = cron.parse(record.config.get("cronExpression", ""))
                except cron.CronError as exc:  # validated when stored; an older agent's row, say
                    log.warning("timer %s not scheduled: %s", record.id, exc)
                    continue
                names = sorted({p["name"] for p in record.spec.get("peers") or []} | {self._me})
                peers = [p for p in sorted(record.spec.get("peers") or [], key=lambda p: p["name"])
                         if p["name"] != self._me]
                first = schedule.next_after(now)
                if catch_up:
                    missed = schedule.previous_at_or_before(now, cron.period(schedule, now))
                    if missed is not None and missed.timestamp() > record.created_time:
                        first = missed
                timers[record.id] = _Timer(record, schedule, names.index(self._me), peers, first)
            self._timers = timers
        self._wake.set()

    # claims ---------------------------------------------------------------------------------------------------
    def grant(self, request: dict[str, Any]) -> str | None:
        """A peer's claim of a tick: the tick's holder here (the asker unless another was first), or None when
        this host does not hold the trigger. Raises PermissionError on a bad signature."""
        trigger_id, scheduled, holder = request["trigger_id"], float(request["scheduled"]), request["holder"]
        function, _, name = trigger_id.partition(":")
        record = self._store.get(function, name)
        if record is None or record.type != "timer":
            return None
        key = record.spec.get("peer_key") or ""
        if not key or not hmac.compare_digest(claim_mac(key, trigger_id, scheduled, holder), str(request.get("mac"))):
            raise PermissionError(f"claim of {trigger_id} is not signed with the trigger's peer key")
        return self._store.claim_tick(trigger_id, scheduled, holder)

    def _ask(self, peer: dict[str, Any], timer: _Timer, scheduled: float) -> str | None:
        record = timer.record
        claim = {"trigger_id": record.id, "scheduled": scheduled, "holder": self._me,
                 "mac": claim_mac(record.spec.get("peer_key") or "", record.id, scheduled, self._me)}
        try:
            return peerclaim.ask(peer, CLAIM_PATH, claim, f"timer {record.id}")
        except peerclaim.PeerDown:
            return None  # down or unreachable: its turn is skipped

    def _attempt(self, timer: _Timer, tick: datetime) -> None:
        scheduled = round(tick.timestamp(), 3)
        try:
            if self._store.claim_tick(timer.record.id, scheduled, self._me) != self._me:
                return
            for peer in timer.peers:
                holder = self._ask(peer, timer, scheduled)
                if holder is not None and holder != self._me:
                    return
            self._fire(timer.record, event_of(timer.record, tick))
        except Exception:  # noqa: BLE001 - one failed tick must not stop the timer
            log.exception("timer %s: tick %s", timer.record.id, tick.isoformat())

    # the loop -------------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        last_cleanup = 0.0
        while not self._stopping.is_set():
            now = time.time()
            with self._lock:
                timers = list(self._timers.values())
                due = [t for t in timers if t.due <= now]
                for timer in due:
                    tick = timer.next_tick
                    threading.Thread(target=self._attempt, args=(timer, tick), name=f"tick-{timer.record.id}",
                                     daemon=True).start()
                    nxt = timer.schedule.next_after(tick)
                    while nxt.timestamp() + timer.rank * HANDOVER < now - STALE:
                        nxt = timer.schedule.next_after(nxt)  # stalled past several ticks: skip them
                    timer.next_tick = nxt
                    timer.due = nxt.timestamp() + timer.rank * HANDOVER
                earliest = min((t.due for t in timers), default=now + 1.0)
            if now - last_cleanup > 3600:
                last_cleanup = now
                self._store.forget_ticks_before(now - KEEP_FIRINGS)
            self._wake.wait(max(0.0, min(earliest - time.time(), 1.0)))
            self._wake.clear()
