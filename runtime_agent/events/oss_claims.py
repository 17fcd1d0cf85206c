"""Which host delivers an object event, when every host of an OSS trigger watches the bucket (failover).

The timer's claim mechanism (events/timer.py), per object event instead of per tick: the event's key is
``kind|ETag|object key``; a host records the claim (trigger id, event) -> itself in its own SQLite unless a holder
is recorded there already, then asks every other peer, in rank order, to record the same claim (``POST
/_fc/oss-claims`` on the invoke port, HMAC-signed with the trigger's peer key); a peer answers the holder it has.
The host delivers only when no peer named another holder. Whoever delivers recorded the event on every reachable
peer first, so a later claimant (a host of the next rank, the owner back from a restart) finds it recorded and
skips it. A peer that does not answer within peerclaim.CLAIM_TIMEOUT is skipped, and not asked again for
PEER_DOWN_FOR.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from typing import Any

from ..state.oss_index import OssIndex
from ..state.triggers import TriggerRecord
from . import peerclaim

CLAIM_PATH = "/_fc/oss-claims"
PEER_DOWN_FOR = 5.0  # seconds a peer that did not answer is skipped (a host down costs one timeout, not one per event)
KEEP_CLAIMS = 7 * 86400.0


def event_id(kind: str, etag: str, key: str) -> str:
    return f"{kind}|{etag}|{key}"


def claim_mac(key: str, trigger_id: str, event: str, holder: str) -> str:
    return hmac.new(key.encode(), f"{trigger_id}|{event}|{holder}".encode(), hashlib.sha256).hexdigest()


class EventClaims:
    def __init__(self, index: OssIndex, host_name: str) -> None:
        self._index = index
        self._me = host_name
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._last_cleanup = 0.0

    def win(self, trigger: TriggerRecord, event: str) -> bool:
        """True when this host is to deliver the event: its claim holds here and on every peer that answered."""
        if self._index.claim(trigger.id, event, self._me) != self._me:
            return False
        for peer in sorted(trigger.spec.get("peers") or [], key=lambda p: p["name"]):
            if peer["name"] == self._me:
                continue
            holder = self._ask(peer, trigger, event)
            if holder is not None and holder != self._me:
                return False
        self._cleanup()
        return True

    def grant(self, request: dict[str, Any], record: TriggerRecord | None) -> str | None:
        """A peer's claim: the event's holder here, or None when this host does not hold the trigger. Raises
        PermissionError on a bad signature."""
        if record is None or record.type != "oss":
            return None
        trigger_id, event, holder = request["trigger_id"], str(request["event"]), str(request["holder"])
        key = record.spec.get("peer_key") or ""
        if not key or not hmac.compare_digest(claim_mac(key, trigger_id, event, holder), str(request.get("mac"))):
            raise PermissionError(f"claim of {trigger_id} is not signed with the trigger's peer key")
        return self._index.claim(trigger_id, event, holder)

    def _ask(self, peer: dict[str, Any], trigger: TriggerRecord, event: str) -> str | None:
        if self._down_until.get(peer["name"], 0.0) > time.monotonic():
            return None
        claim = {"trigger_id": trigger.id, "event": event, "holder": self._me,
                 "mac": claim_mac(trigger.spec.get("peer_key") or "", trigger.id, event, self._me)}
        try:
            return peerclaim.ask(peer, CLAIM_PATH, claim, f"OSS trigger {trigger.id}")
        except peerclaim.PeerDown:
            with self._lock:
                self._down_until[peer["name"]] = time.monotonic() + PEER_DOWN_FOR
            return None  # down or unreachable: skipped

    def _cleanup(self) -> None:
        now = time.time()
        if now - self._last_cleanup > 3600:
            self._last_cleanup = now
            self._index.forget_claims_before(now - KEEP_CLAIMS)
