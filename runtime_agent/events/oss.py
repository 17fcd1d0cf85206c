"""OSS triggers on an S3-compatible server: push (the server's webhook) and a listing that catches up.

S3 servers without per-bucket notifications (versitygw posts every event to one global webhook) leave the trigger
logic to us: each trigger's ``events`` and ``filter.key.{prefix,suffix}`` are matched here, and the function gets
FC's OSS event translated from the S3 record (docs/triggers.md has the table).

Push is lossy (no retry, no order), so every trigger also lists its bucket with boto3 (ListObjectsV2 over the
prefix, every ``source.reconcile_seconds``) against the objects it knows (state/oss_index.py): a key it does not
know, or whose ETag changed, is an ``ObjectCreated:PutObject``; a known key no longer listed is an
``ObjectRemoved:DeleteObject``. An event is delivered once per (trigger, key, ETag, created|removed), whichever path
sees it first; it is recorded, then put in the async queue (events/firings.py: FC invokes OSS triggers
asynchronously), which retries a failed invocation by FC's policy. The first listing of a new trigger records
what is there and fires nothing.

Every host of a trigger (its ``peers``) lists the bucket and takes the webhook; which one delivers an event is
claimed across them as timer ticks are (events/oss_claims.py). The owner, the first host by name, delivers at
once (the webhook URL points there: the Trigger resource outputs ``oss_webhook_url``); the host of rank r acts on
a change it lists only after r listing periods, when no host before it claimed it. So when the owner is down the
next host delivers, from its listing, one period late; the owner back finds those events claimed and skips them.
"""

from __future__ import annotations

import fnmatch
import hmac
import logging
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from ..state.oss_index import OssIndex
from ..state.triggers import TriggerRecord
from .oss_claims import EventClaims, event_id

log = logging.getLogger("fc-agent")

DEFAULT_RECONCILE = 10.0
S3_TO_FC = {"ObjectCreated:Put": "ObjectCreated:PutObject", "ObjectCreated:Post": "ObjectCreated:PostObject",
            "ObjectCreated:Copy": "ObjectCreated:CopyObject",
            "ObjectCreated:CompleteMultipartUpload": "ObjectCreated:CompleteMultipartUpload",
            "ObjectRemoved:Delete": "ObjectRemoved:DeleteObject",
            "ObjectRemoved:DeleteMarkerCreated": "ObjectRemoved:DeleteObject",
            "ObjectRemoved:DeleteObjects": "ObjectRemoved:DeleteObjects"}


class SourceUnreachable(Exception):
    pass


def s3_client(source: dict[str, Any], *, timeout: float = 5.0) -> Any:
    import boto3  # vendored into the bundle; imported here so an agent without OSS triggers never loads it
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=source["endpoint"], region_name=source.get("region") or "us-east-1",
                        aws_access_key_id=source.get("access_key_id"),
                        aws_secret_access_key=source.get("secret_access_key"),
                        config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1},
                                      s3={"addressing_style": "path"}))


def check_source(source: dict[str, Any]) -> None:
    """The bucket answers (HeadBucket), else SourceUnreachable naming the endpoint and bucket."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3_client(source, timeout=3.0).head_bucket(Bucket=source["bucket"])
    except (BotoCoreError, ClientError, ValueError) as exc:
        raise SourceUnreachable(f"source: bucket {source.get('bucket')!r} at {source.get('endpoint')} does not "
                                f"answer: {exc}") from exc


def matches(record: TriggerRecord, event_name: str, key: str) -> bool:
    config = record.config
    if not any(fnmatch.fnmatchcase(f"oss:{event_name}", pattern) for pattern in config.get("events") or ()):
        return False
    key_filter = (config.get("filter") or {}).get("key") or {}
    return key.startswith(key_filter.get("prefix") or "") and key.endswith(key_filter.get("suffix") or "")


def fc_event(record: TriggerRecord, name: str, key: str, etag: str, size: int, *, when: str, source_ip: str = "",
             principal: str = "", region: str = "", delta: int | None = None) -> dict[str, Any]:
    bucket = record.spec["source"]["bucket"]
    region = region or record.spec["source"].get("region") or "local"
    return {
        "eventName": name, "eventSource": "acs:oss", "eventTime": when, "eventVersion": "1.0",
        "oss": {"bucket": {"arn": f"acs:oss:{region}:fleet:{bucket}", "name": bucket, "ownerIdentity": principal},
                "object": {"deltaSize": size if delta is None else delta, "eTag": etag.strip('"').upper(),
                           "key": key, "size": size},
                "ossSchemaVersion": "1.0", "ruleId": record.id},
        "region": region, "requestParameters": {"sourceIPAddress": source_ip},
        "responseElements": {"requestId": uuid.uuid4().hex.upper()[:24]}, "userIdentity": {"principalId": principal},
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class OssTriggers:
    def __init__(self, index: OssIndex, host_name: str, fire: Callable[[TriggerRecord, dict[str, Any]], Any]) -> None:
        self._index = index
        self._me = host_name
        self._fire = fire
        self.claims = EventClaims(index, host_name)
        self._handled: dict[str, TriggerRecord] = {}
        self._rank: dict[str, int] = {}
        self._pending: dict[tuple[str, str], float] = {}  # (trigger id, event id) -> first listed (monotonic)
        self._next_listing: dict[str, float] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="oss-listing", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def update(self, records: list[TriggerRecord]) -> None:
        """Every host of a trigger handles it; its rank (place among the peers by name) says how long it lets a
        change it lists wait for the hosts before it (docs/triggers.md, failover)."""
        handled, ranks = {}, {}
        for record in records:
            if record.type != "oss":
                continue
            peers = sorted({p["name"] for p in record.spec.get("peers") or []} | {self._me})
            handled[record.id], ranks[record.id] = record, peers.index(self._me)
        for gone in set(self._handled) - set(handled):
            self._index.forget(gone)
        self._handled, self._rank = handled, ranks

    def get(self, trigger_id: str) -> TriggerRecord | None:
        return self._handled.get(trigger_id)

    def accepts(self, token: str) -> bool:
        """The webhook's path token is the peer key of one of this host's OSS triggers (any of its hosts takes
        the webhook: a proxy in front of them may post to whichever is up)."""
        return any(hmac.compare_digest(token, r.spec.get("peer_key") or "\0") for r in self._handled.values())

    # push -----------------------------------------------------------------------------------------------------
    def on_records(self, records: list[dict[str, Any]]) -> int:
        delivered = 0
        for rec in records:
            s3 = rec.get("s3") or {}
            bucket, obj = (s3.get("bucket") or {}).get("name"), s3.get("object") or {}
            name = S3_TO_FC.get(str(rec.get("eventName", "")).removeprefix("s3:"))
            key = obj.get("key")
            if not bucket or not key or name is None:
                continue
            for trigger in list(self._handled.values()):
                if trigger.spec["source"]["bucket"] != bucket:
                    continue
                removed = name.startswith("ObjectRemoved")
                delivered += self._deliver(trigger, name, key, str(obj.get("eTag") or "").strip('"'),
                                           int(obj.get("size") or 0), removed=removed,
                                           when=str(rec.get("eventTime") or _iso(datetime.now(timezone.utc))),
                                           source_ip=(rec.get("requestParameters") or {}).get("sourceIPAddress", ""),
                                           principal=(rec.get("userIdentity") or {}).get("principalId", ""),
                                           region=rec.get("awsRegion") or "")
        return delivered

    def _deliver(self, trigger: TriggerRecord, name: str, key: str, etag: str, size: int, *, removed: bool,
                 when: str, **extra: Any) -> int:
        kind = "removed" if removed else "created"
        with self._index.lock:
            known = self._index.known(trigger.id, key)
            if removed:
                etag = etag or (known[0] if known else "")
                size = known[1] if known else 0
                self._index.drop_object(trigger.id, key)
            else:
                self._index.set_object(trigger.id, key, etag, size)
            if not self._index.first_time(trigger.id, key, etag, kind):
                return 0
        if not matches(trigger, name, key) or not self.claims.win(trigger, event_id(kind, etag, key)):
            return 0  # another host of the trigger delivered it (or is delivering it)
        delta = None if removed or known is None else size - known[1]
        event = fc_event(trigger, name, key, etag, size, when=when, delta=delta, **extra)
        self._fire(trigger, {"events": [event]})  # into the durable async queue: the delivery itself
        return 1

    # listing --------------------------------------------------------------------------------------------------
    def reconcile(self, trigger: TriggerRecord) -> int:
        """Lists the bucket once; delivers what changed since the last look. Returns the events delivered.

        The host of rank r acts on a change once it has listed it for r listing periods: the owner (rank 0) at
        once, the next host only when the owner did not claim it meanwhile (down), and so on."""
        source = trigger.spec["source"]
        prefix = ((trigger.config.get("filter") or {}).get("key") or {}).get("prefix") or ""
        listed: dict[str, tuple[str, int, datetime]] = {}
        paginator = s3_client(source).get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=source["bucket"], Prefix=prefix):
            for obj in page.get("Contents") or ():
                listed[obj["Key"]] = (str(obj.get("ETag") or "").strip('"'), int(obj.get("Size") or 0),
                                      obj.get("LastModified") or datetime.now(timezone.utc))
        if not self._index.primed(trigger.id):
            self._index.prime(trigger.id, {k: (e, s) for k, (e, s, _) in listed.items()})
            return 0
        known = self._index.objects(trigger.id)
        changes = [(key, "created", etag, size, modified) for key, (etag, size, modified) in sorted(listed.items())
                   if known.get(key, ("",))[0] != etag]
        changes += [(key, "removed", known[key][0], known[key][1], None) for key in sorted(set(known) - set(listed))]
        wait = self._rank.get(trigger.id, 0) * self._period(trigger) - 0.05
        now, due, still = time.monotonic(), [], set()
        for change in changes:
            pending = (trigger.id, event_id(change[1], change[2], change[0]))
            still.add(pending)
            if now - self._pending.setdefault(pending, now) >= wait:
                due.append(change)
                self._pending.pop(pending, None)
        for pending in [p for p in self._pending if p[0] == trigger.id and p not in still]:
            del self._pending[pending]  # changed again, or delivered by the webhook here meanwhile
        delivered = 0
        for key, kind, etag, size, modified in due:
            if kind == "created":
                delivered += self._deliver(trigger, "ObjectCreated:PutObject", key, etag, size, removed=False,
                                           when=_iso(modified))
            else:
                delivered += self._deliver(trigger, "ObjectRemoved:DeleteObject", key, etag, size, removed=True,
                                           when=_iso(datetime.now(timezone.utc)))
        return delivered

    @staticmethod
    def _period(trigger: TriggerRecord) -> float:
        return float(trigger.spec["source"].get("reconcile_seconds") or DEFAULT_RECONCILE)

    def _loop(self) -> None:
        while not self._stopping.wait(0.2):
            now = time.monotonic()
            for trigger in list(self._handled.values()):
                if self._next_listing.get(trigger.id, 0.0) > now:
                    continue
                self._next_listing[trigger.id] = now + self._period(trigger)
                try:
                    self.reconcile(trigger)
                except Exception as exc:  # noqa: BLE001 - the server may be down: the next listing tries again
                    log.warning("OSS trigger %s: listing failed: %s", trigger.id, exc)
