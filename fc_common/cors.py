"""FC's ``corsConfig`` of an HTTP trigger (``CORSConfig``: allowOrigins, allowMethods, allowHeaders, exposeHeaders,
allowCredentials, maxAge): the rules both sides apply (the provider at preview, the agent when it stores a
trigger), and the headers the agent answers with (runtime_agent/events/http_cors.py)."""

from __future__ import annotations

import re
from typing import Any

from .triggers import HTTP_METHODS

KEYS = ("allowOrigins", "allowMethods", "allowHeaders", "exposeHeaders", "allowCredentials", "maxAge")
MAX_AGE = 86400  # browsers cap it at a day or less
ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header name


def problems(config: Any) -> list[tuple[str, str]]:
    """(field, rule) for each thing wrong; [] when the config is usable."""
    if not isinstance(config, dict):
        return [("corsConfig", "must be an object")]
    out = [(f"corsConfig.{k}", f"is not a field of corsConfig (fields: {', '.join(KEYS)})")
           for k in sorted(set(config) - set(KEYS))]
    lists = {k: config.get(k) or [] for k in ("allowOrigins", "allowMethods", "allowHeaders", "exposeHeaders")}
    for key, values in lists.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            out.append((f"corsConfig.{key}", "must be a list of strings"))
            lists[key] = []
    if not lists["allowOrigins"]:
        out.append(("corsConfig.allowOrigins", "must list at least one origin (\"*\" for any)"))
    for i, origin in enumerate(lists["allowOrigins"]):
        if origin != "*" and not ORIGIN.match(origin):
            out.append((f"corsConfig.allowOrigins.{i}", f"{origin!r} is not '*' or an origin such as "
                        "https://app.example.com (scheme, host, optional port; no path)"))
    for i, method in enumerate(lists["allowMethods"]):
        if method != "*" and method not in HTTP_METHODS:
            out.append((f"corsConfig.allowMethods.{i}", f"{method!r} is not '*' or one of {', '.join(HTTP_METHODS)}"))
    for key in ("allowHeaders", "exposeHeaders"):
        for i, name in enumerate(lists[key]):
            if name != "*" and not TOKEN.match(name):
                out.append((f"corsConfig.{key}.{i}", f"{name!r} is not '*' or a header name"))
    credentials = config.get("allowCredentials", False)
    if not isinstance(credentials, bool):
        out.append(("corsConfig.allowCredentials", "must be true or false"))
    elif credentials and "*" in lists["allowOrigins"]:
        out.append(("corsConfig.allowCredentials", "cannot be true with allowOrigins '*' (browsers refuse a "
                    "credentialed answer to any origin): list the origins"))
    age = config.get("maxAge")
    if age is not None and (isinstance(age, bool) or not isinstance(age, int) or not 0 <= age <= MAX_AGE):
        out.append(("corsConfig.maxAge", f"must be a whole number of seconds, 0-{MAX_AGE}"))
    return out
