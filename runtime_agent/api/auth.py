"""Verification of every invoke-API request, as Function Compute does it: an ACS3-HMAC-SHA256 signature
(``fc_common.acs3``) by a key this host knows (``state.keys``), an ``x-acs-date`` within 15 minutes of the host's
clock, an ``x-acs-signature-nonce`` never accepted twice within that window, then the key's policy.

Refusals, in FC's error shape:
    400 MissingRequiredHeader   Authorization, x-acs-date or x-acs-signature-nonce absent
    400 InvalidArgument         a malformed Authorization or date, an unsupported algorithm, an STS token
    403 InvalidAccessKeyID      the key id is not known on this host (never created, or revoked)
    403 SignatureNotMatch       the signature (or the body's sha256) does not match
    403 RequestTimeTooSkewed    x-acs-date is more than 15 minutes away from the host's clock
    403 SignatureNonceUsed      the nonce was already accepted (a replay)
    403 AccessDenied            the key's policy does not allow the action on the resource

Nonces are remembered only for requests whose signature verified, so unsigned traffic cannot fill the cache; an
entry lives as long as its date stays inside the window.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import threading
import time
from collections import deque
from typing import Callable, Mapping
from urllib.parse import parse_qsl

from fc_common import acs3
from fc_common.naming import function_arn

from ..errors import BadRequest, Forbidden
from ..state.keys import AccessKey, KeyStore

WINDOW_SECONDS = 15 * 60
_AUTH_FIELDS = {"Credential", "SignedHeaders", "Signature"}
_PARSED_CACHE_SIZE = 1024
_SIGNATURE_LENGTH = 64


class NonceCache:
    """Nonces accepted within the window, per key; expired ones leave in order of expiry.

    A claim takes no lock: ``dict.setdefault`` with a (str, str) key is one atomic step under the GIL, so of two
    requests racing with one nonce exactly one inserts its own expiry and wins. Expired entries are pruned at most
    once a second, by whichever claim gets the lock first."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._expiry: deque[tuple[float, tuple[str, str]]] = deque()
        self._prune_lock = threading.Lock()
        self._next_prune = 0.0

    def claim(self, key_id: str, nonce: str, expires: float, now: float) -> bool:
        """True the first time (key, nonce) is seen before it expires; False for a replay."""
        entry = (key_id, nonce)
        if self._seen.setdefault(entry, expires) is not expires:
            return False
        self._expiry.append((expires, entry))
        if now >= self._next_prune and self._prune_lock.acquire(blocking=False):
            try:
                self._next_prune = now + 1.0
                while self._expiry and self._expiry[0][0] <= now:
                    _, old = self._expiry.popleft()
                    if self._seen.get(old, now + 1) <= now:
                        del self._seen[old]
            finally:
                self._prune_lock.release()
        return True

    def __len__(self) -> int:
        return len(self._seen)


class Authenticator:
    def __init__(self, keys: KeyStore, *, clock: Callable[[], float] = time.time,
                 window: float = WINDOW_SECONDS) -> None:
        self.keys = keys
        self.nonces = NonceCache()
        self._clock = clock
        self._window = window
        self._date_cache: tuple[str, float] = ("", 0.0)  # the date header changes once a second
        # A client's Authorization differs from one request to the next only in its Signature: the rest, parsed
        # and checked once, is kept (bounded: a flood of made-up credentials only empties it).
        self._parsed: dict[str, tuple[str, list[str]]] = {}

    def verify(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> AccessKey:
        """The key that signed the request; raises BadRequest or Forbidden naming what is wrong.

        Written for the warm path (every invocation passes here): one lookup per header, the Authorization's fixed
        part parsed once per client, the key's HMAC states prepared once per key; the slower checks that only
        name an error run once something is already wrong."""
        auth = headers.get("authorization")
        if not auth:
            raise BadRequest("required HTTP header Authorization was not specified: every request must be signed "
                             "with ACS3-HMAC-SHA256 by an access key (see docs/security.md)",
                             code="MissingRequiredHeader")
        key_id, signed, given = self._parse_authorization(auth)
        date = headers.get(acs3.DATE_HEADER)
        nonce = headers.get(acs3.NONCE_HEADER)
        if not date or not nonce:
            missing = acs3.DATE_HEADER if not date else acs3.NONCE_HEADER
            raise BadRequest(f"required HTTP header {missing} was not specified", code="MissingRequiredHeader")
        if acs3.DATE_HEADER not in signed or acs3.NONCE_HEADER not in signed:
            unsigned = acs3.DATE_HEADER if acs3.DATE_HEADER not in signed else acs3.NONCE_HEADER
            raise BadRequest(f"header {unsigned} must be one of the SignedHeaders", code="InvalidArgument")
        if headers.get(acs3.SECURITY_TOKEN_HEADER):
            raise BadRequest("x-acs-security-token: this fleet issues no STS tokens; sign with an access key",
                             code="InvalidArgument")
        now = self._clock()
        cached_date, stamp = self._date_cache
        if date != cached_date:
            stamp = self._parse_date(date)
        if abs(now - stamp) > self._window:
            raise Forbidden(f"x-acs-date {date} is {abs(now - stamp):.0f} s away from the host's clock "
                            f"({time.strftime(acs3.DATE_FORMAT, time.gmtime(now))}); at most "
                            f"{self._window:.0f} s are allowed", code="RequestTimeTooSkewed")
        key = self.keys.get(key_id)
        if key is None:
            raise Forbidden(f"invalid access key ID '{key_id}'", code="InvalidAccessKeyID")
        payload_hash = headers.get(acs3.CONTENT_HASH_HEADER, "")
        if payload_hash and payload_hash != acs3.body_hash(body):
            raise Forbidden("x-acs-content-sha256 does not match the sha256 of the body", code="SignatureNotMatch")
        path, _, query_string = target.partition("?")
        query = dict(parse_qsl(query_string, keep_blank_values=True)) if query_string else {}
        try:
            canonical = acs3.canonical_request(method, path, query, headers, signed, payload_hash)
        except KeyError:
            missing = ", ".join(name for name in signed if name not in headers)
            raise BadRequest(f"signed header(s) {missing} are not in the request", code="InvalidArgument") from None
        if not given.isascii() or not hmac.compare_digest(key.signature(canonical), given):
            digest = hashlib.sha256(canonical.encode()).hexdigest()
            raise Forbidden("The request signature we calculated does not match the signature you provided. Check "
                            f"your access key and signing method. String to sign: "
                            f"{acs3.ALGORITHM}\\n{digest}", code="SignatureNotMatch")
        if not self.nonces.claim(key_id, nonce, stamp + self._window, now):
            raise Forbidden(f"x-acs-signature-nonce {nonce} was already used; every request needs a new one",
                            code="SignatureNonceUsed")
        return key

    @staticmethod
    def authorize(key: AccessKey, action: str, resource: str) -> None:
        if not key.allows(action, resource):
            raise Forbidden(f"access key {key.key_id} is not allowed {action} on {resource}", code="AccessDenied")

    def _parse_authorization(self, value: str) -> tuple[str, list[str], str]:
        # The memo's key is everything but the signature's 64 hex digits (a SHA-256), which end the value.
        given = value[-_SIGNATURE_LENGTH:]
        known = self._parsed.get(value[:-_SIGNATURE_LENGTH])
        if known is not None and given.isalnum():
            return known[0], known[1], given
        key_id, signed, given = _parse_authorization(value)
        if len(given) == _SIGNATURE_LENGTH and given.isalnum() and value.endswith(",Signature=" + given):
            if len(self._parsed) >= _PARSED_CACHE_SIZE:
                self._parsed.clear()
            self._parsed[value[:-_SIGNATURE_LENGTH]] = (key_id, signed)
        return key_id, signed, given

    def _parse_date(self, date: str) -> float:
        """A date that is not the cached one (verify checks the cache inline); it becomes the cached one."""
        try:
            stamp = float(calendar.timegm(time.strptime(date, acs3.DATE_FORMAT)))
        except ValueError:
            raise BadRequest(f"x-acs-date {date[:40]!r} is not a UTC time as YYYY-MM-DDTHH:MM:SSZ",
                             code="InvalidArgument") from None
        self._date_cache = (date, stamp)
        return stamp


def _parse_authorization(value: str) -> tuple[str, list[str], str]:
    algorithm, _, rest = value.partition(" ")
    if algorithm != acs3.ALGORITHM:
        raise BadRequest(f"unsupported signature algorithm {algorithm[:40]!r} in Authorization; use "
                         f"{acs3.ALGORITHM}", code="InvalidArgument")
    fields = dict(part.strip().partition("=")[::2] for part in rest.split(","))
    if fields.keys() != _AUTH_FIELDS or not all(fields.values()):
        raise BadRequest(f"malformed Authorization: expected {acs3.ALGORITHM} Credential=<key id>,"
                         "SignedHeaders=<a;b>,Signature=<hex>", code="InvalidArgument")
    names = fields["SignedHeaders"]
    signed = names.split(";")
    if names != names.lower() or signed != sorted(signed):
        raise BadRequest("malformed Authorization: SignedHeaders must be lower-case names in sorted order",
                         code="InvalidArgument")
    return fields["Credential"], signed, fields["Signature"]


class FunctionAuthType:
    """HTTP triggers with authType ``function`` (api/http_trigger.py): the request carries FC's signature, verified
    exactly as the invoke API verifies it, and the key's policy must allow fc:InvokeFunction on the trigger's
    function."""

    def __init__(self, auth: Authenticator) -> None:
        self.auth = auth

    def verify(self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes,
               function: str) -> None:
        key = self.auth.verify(method, path + (f"?{query}" if query else ""), headers, body)
        self.auth.authorize(key, "fc:InvokeFunction", function_arn(function))
