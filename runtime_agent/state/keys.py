"""The access keys this host accepts: one JSON file per key in ``/etc/fc-agent/access-keys/`` (mode 0600, the
folder 0700), held in memory for the warm path. The provider's AccessKey resource puts and deletes them through
the control API; a restarted agent reads the folder back.

A file per key, not one list: stacks sharing the agent each manage their own keys without overwriting another's.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from fc_common import acs3
from fc_common.policy import Policy

log = logging.getLogger("fc-agent")

KEY_ID = re.compile(r"^[A-Za-z0-9]{8,64}$")
_DECISIONS_KEPT = 4096  # per key; past it the memo starts afresh


@dataclass(frozen=True)
class AccessKey:
    key_id: str
    secret: bytes = field(repr=False)
    policy: Policy
    policy_json: dict[str, Any]
    # The policy's answers so far, by (action, resource): its patterns are matched once per function, not once
    # per request. A key whose policy changes is a new AccessKey, with an empty memo.
    _decisions: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False, compare=False)
    # The secret's HMAC states, prepared once: what a request's signature is checked against.
    signature: acs3.KeyedSignature = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signature", acs3.KeyedSignature(self.secret))

    def allows(self, action: str, resource: str) -> bool:
        decided = self._decisions.get((action, resource))
        if decided is None:
            if len(self._decisions) >= _DECISIONS_KEPT:
                self._decisions.clear()
            decided = self._decisions[(action, resource)] = self.policy.allows(action, resource)
        return decided

    def describe(self) -> dict[str, Any]:
        """What the control API shows of a key: never its secret."""
        return {"access_key_id": self.key_id, "policy": self.policy_json}


class KeyStore:
    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._lock = threading.Lock()  # writers only; readers take the dict as it is
        self._keys: dict[str, AccessKey] = {}
        self._load()

    def _load(self) -> None:
        if not self._folder.is_dir():
            return
        for path in sorted(self._folder.glob("*.json")):
            try:
                raw = json.loads(path.read_text())
                self._keys[path.stem] = _key(path.stem, raw)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("access key file %s is unreadable, ignored: %s", path, exc)

    def get(self, key_id: str) -> AccessKey | None:
        return self._keys.get(key_id)

    def list(self) -> list[AccessKey]:
        return sorted(self._keys.values(), key=lambda k: k.key_id)

    def put(self, key_id: str, raw: Mapping[str, Any]) -> AccessKey:
        """Validates and stores a key (``{"secret": ..., "policy": {...}}``); ValueError names what is wrong."""
        if not KEY_ID.match(key_id):
            raise ValueError(f"access key id {key_id!r} must be 8-64 letters or digits")
        key = _key(key_id, raw)
        with self._lock:
            self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self._folder / f".{key_id}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"secret": raw["secret"], "policy": key.policy_json}, f)
            os.replace(tmp, self._folder / f"{key_id}.json")
            self._keys = {**self._keys, key_id: key}
        return key

    def delete(self, key_id: str) -> bool:
        with self._lock:
            if key_id not in self._keys:
                return False
            (self._folder / f"{key_id}.json").unlink(missing_ok=True)
            self._keys = {k: v for k, v in self._keys.items() if k != key_id}
            return True


def _key(key_id: str, raw: Mapping[str, Any]) -> AccessKey:
    secret = raw.get("secret") if isinstance(raw, Mapping) else None
    if not isinstance(secret, str) or len(secret) < 16:
        raise ValueError("secret must be a string of at least 16 characters")
    policy_json = dict(raw.get("policy") or {"actions": ["fc:*"], "resources": ["*"]})
    return AccessKey(key_id, secret.encode(), Policy.of(policy_json), policy_json)
