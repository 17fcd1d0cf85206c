"""Signs invoke-API requests with an access key (ACS3-HMAC-SHA256, ``fc_common.acs3``), as the official SDK
does: ``fc invoke``, the tests and the benchmarks use it. Keys come from an ``fc.AccessKey``'s outputs or from
the variables FC's own tools read, ``ALIBABA_CLOUD_ACCESS_KEY_ID`` and ``ALIBABA_CLOUD_ACCESS_KEY_SECRET``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional
from urllib.parse import parse_qsl, urlsplit

from fc_common import acs3

ENV_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: str

    def __repr__(self) -> str:  # never print the secret
        return f"Credentials({self.access_key_id!r}, ***)"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Optional["Credentials"]:
        key_id, secret = environ.get(ENV_KEY_ID), environ.get(ENV_KEY_SECRET)
        return cls(key_id, secret) if key_id and secret else None


def sign(credentials: Credentials, method: str, url: str, body: bytes = b"",
         headers: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The headers to send with ``method url`` (``headers`` included, signed): date, nonce, body hash and
    Authorization. The URL's path and query are signed exactly as they will be sent."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return acs3.sign(method, parts.path or "/", query, dict(headers or {}), body, credentials.access_key_id,
                     credentials.access_key_secret)
