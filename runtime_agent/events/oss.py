"""OSS triggers on an S3-compatible server: push (the server's webhook) and a listing that catches up.

S3 servers without per-bucket notifications (versitygw posts every event to one global webhook) leave the trigger
logic to us: each trigger's ``events`` and ``filter.key.{prefix,suffix}`` are matched here, and the function gets
FC's OSS event translated from the S3 record (docs/triggers.md has the table).

Push is lossy (no retry, no order), so every trigger also lists its bucket with boto3 (ListObjectsV2 over the
prefix, every ``source.reconcile_seconds``) against the objects it knows (state/oss_index.py): a key it does not
know, or whose ETag changed, is an ``ObjectCreated:PutObject``; a known key no longer listed is an
``ObjectRemoved:DeleteObject``. An event is delivered once per (trigger, key, ETag, created|removed), whichever path
sees it first; it is recorded before the function is invoked (at most once: a failed invocation is not retried
until async invocation exists). The first listing of a new trigger records what is there and fires nothing.

A trigger is handled by its owner, the first of its hosts by name (``peers``): the webhook should point there
(the Trigger resource outputs ``oss_webhook_url``). When the owner is down, nothing is delivered; once it is back,
its next listing delivers what changed meanwhile, each once.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from ..state.oss_index import OssIndex
from ..state.triggers import TriggerRecord

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
        self._owned: dict[str, TriggerRecord] = {}
        self._next_listing: dict[str, float] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="oss-listing", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def update(self, records: list[TriggerRecord]) -> None:
        owned = {}
        for record in records:
            if record.type != "oss":
                continue
            peers = sorted(p["name"] for p in record.spec.get("peers") or []) or [self._me]
            if peers[0] == self._me:
                owned[record.id] = record
        for gone in set(self._owned) - set(owned):
            self._index.forget(gone)
        self._owned = owned

    def accepts(self, token: str) -> bool:
        """The webhook's path token is the peer key of one of the triggers this host owns."""
        import hmac
        return any(hmac.compare_digest(token, r.spec.get("peer_key") or "\0") for r in self._owned.values())

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
            for trigger in list(self._owned.values()):
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
        with self._index.lock:
            known = self._index.known(trigger.id, key)
            if removed:
                etag = etag or (known[0] if known else "")
                size = known[1] if known else 0
                self._index.drop_object(trigger.id, key)
            else:
                self._index.set_object(trigger.id, key, etag, size)
            if not self._index.first_time(trigger.id, key, etag, "removed" if removed else "created"):
                return 0
        if not matches(trigger, name, key):
            return 0
        delta = None if removed or known is None else size - known[1]
        event = fc_event(trigger, name, key, etag, size, when=when, delta=delta, **extra)
        threading.Thread(target=self._invoke, args=(trigger, event), name=f"oss-{trigger.id}", daemon=True).start()
        return 1

    def _invoke(self, trigger: TriggerRecord, event: dict[str, Any]) -> None:
        try:
            self._fire(trigger, {"events": [event]})
        except Exception:  # noqa: BLE001 - logged; the event was recorded (at most once)
            log.exception("OSS trigger %s: invocation failed", trigger.id)

    # listing --------------------------------------------------------------------------------------------------
    def reconcile(self, trigger: TriggerRecord) -> int:
        """Lists the bucket once; delivers what changed since the last look. Returns the events delivered."""
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
        delivered = 0
        known = self._index.objects(trigger.id)
        for key, (etag, size, modified) in sorted(listed.items()):
            if known.get(key, ("",))[0] != etag:
                delivered += self._deliver(trigger, "ObjectCreated:PutObject", key, etag, size, removed=False,
                                           when=_iso(modified))
        for key in sorted(set(known) - set(listed)):
            delivered += self._deliver(trigger, "ObjectRemoved:DeleteObject", key, known[key][0], known[key][1],
                                       removed=True, when=_iso(datetime.now(timezone.utc)))
        return delivered

    def _loop(self) -> None:
        while not self._stopping.wait(0.2):
            now = time.monotonic()
            for trigger in list(self._owned.values()):
                if self._next_listing.get(trigger.id, 0.0) > now:
                    continue
                self._next_listing[trigger.id] = now + float(trigger.spec["source"].get("reconcile_seconds")
                                                             or DEFAULT_RECONCILE)
                try:
                    self.reconcile(trigger)
                except Exception as exc:  # noqa: BLE001 - the server may be down: the next listing tries again
                    log.warning("OSS trigger %s: listing failed: %s", trigger.id, exc)
