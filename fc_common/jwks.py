"""JSON Web Key sets as FC's JWT authConfig carries them: read by the provider at preview (a JWKS that is not
JSON or has no usable key fails there) and by the agent, which verifies tokens against the keys."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Mapping


class AuthConfigError(ValueError):
    """The trigger's authConfig cannot be used; the message names the key."""


def b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@dataclass
class Key:
    kty: str
    kid: str | None
    alg: str | None
    n: int = 0
    e: int = 0
    secret: bytes = b""


def get_key(config: Mapping[str, Any], key: str) -> Any:
    """A key of FC's authConfig in any of the cases its examples use: jwks, Jwks, JWKS; tokenLookup, TokenLookup."""
    for k in (key, key[0].upper() + key[1:], key.upper()):
        if k in config:
            return config[k]
    return None


def parse_keys(jwks: Any) -> list[Key]:
    if isinstance(jwks, str):
        try:
            jwks = json.loads(jwks)
        except ValueError as exc:
            raise AuthConfigError(f"authConfig.jwks is not valid JSON: {exc}") from exc
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise AuthConfigError('authConfig.jwks must be a JWK set: {"keys": [{"kty": "RSA", "n": ..., "e": ...}]}')
    keys = []
    for i, jwk in enumerate(jwks["keys"]):
        if not isinstance(jwk, Mapping):
            raise AuthConfigError(f"authConfig.jwks.keys[{i}] is not an object")
        kty = jwk.get("kty")
        try:
            if kty == "RSA":
                keys.append(Key("RSA", jwk.get("kid"), jwk.get("alg"), n=int.from_bytes(b64url(jwk["n"]), "big"),
                                e=int.from_bytes(b64url(jwk["e"]), "big")))
            elif kty == "oct":
                keys.append(Key("oct", jwk.get("kid"), jwk.get("alg"), secret=b64url(jwk["k"])))
        except (KeyError, ValueError, TypeError) as exc:
            raise AuthConfigError(f"authConfig.jwks.keys[{i}] ({kty}) is malformed: {exc}") from exc
    if not keys:
        raise AuthConfigError("authConfig.jwks has no usable key (RSA with n and e, or oct with k)")
    return keys
