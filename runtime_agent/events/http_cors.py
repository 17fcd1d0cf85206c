"""CORS for an HTTP trigger with FC's ``corsConfig``, applied by the agent as the Fetch standard's CORS protocol
says (FC documents only the config's fields; Lambda function URLs apply theirs the same way):

- a **preflight** (OPTIONS with ``Origin`` and ``Access-Control-Request-Method``) is answered 204 by the agent
  itself, before auth (browsers send no credentials on it) and whatever ``methods`` says: with the allow headers
  when the origin is allowed, without them otherwise (the browser then refuses the real request);
- every other answer to a request with an allowed ``Origin`` gets ``Access-Control-Allow-Origin``
  (plus ``-Expose-Headers``, ``-Allow-Credentials``); the function's own ``Access-Control-*`` headers are replaced,
  so the config is the one policy.

Without ``corsConfig`` nothing is added: a preflight reaches the function like any OPTIONS request (when
``methods`` lists OPTIONS; 405 otherwise) and the function answers CORS itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

Pairs = list[tuple[str, str]]


@dataclass(frozen=True)
class Cors:
    origins: frozenset[str]
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    expose: tuple[str, ...]
    credentials: bool
    max_age: int | None

    @classmethod
    def from_config(cls, raw: Any) -> "Cors | None":
        if not raw:
            return None
        return cls(frozenset(raw.get("allowOrigins") or ()), tuple(raw.get("allowMethods") or ()),
                   tuple(raw.get("allowHeaders") or ()), tuple(raw.get("exposeHeaders") or ()),
                   bool(raw.get("allowCredentials")), raw.get("maxAge"))

    @staticmethod
    def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
        return method == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers

    def _allowed(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for ``origin``, or None when it is not allowed."""
        if not origin:
            return None
        if origin in self.origins:
            return origin
        return "*" if "*" in self.origins else None

    def preflight(self, headers: Mapping[str, str], trigger_methods: frozenset[str]) -> Pairs:
        allow = self._allowed(headers.get("origin"))
        pairs: Pairs = [("vary", "Origin")]
        if allow is None:
            return pairs
        methods = self.methods or tuple(sorted(trigger_methods))
        asked = headers.get("access-control-request-headers", "")
        pairs += [("access-control-allow-origin", allow),
                  ("access-control-allow-methods", ", ".join(methods))]
        if self.headers:  # "*": whatever the browser asks for
            pairs.append(("access-control-allow-headers", asked if "*" in self.headers and asked
                          else ", ".join(self.headers)))
        if self.max_age is not None:
            pairs.append(("access-control-max-age", str(self.max_age)))
        if self.credentials:
            pairs.append(("access-control-allow-credentials", "true"))
        return pairs

    def answer(self, origin: str | None, pairs: Pairs) -> Pairs:
        """The response's headers, with the config's CORS headers instead of the function's."""
        allow = self._allowed(origin)
        if allow is None:
            return pairs
        out = [p for p in pairs if not p[0].lower().startswith("access-control-")]
        out += [("access-control-allow-origin", allow), ("vary", "Origin")]
        if self.expose:
            out.append(("access-control-expose-headers", ", ".join(self.expose)))
        if self.credentials:
            out.append(("access-control-allow-credentials", "true"))
        return out
