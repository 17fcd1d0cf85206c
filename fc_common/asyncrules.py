"""Function Compute's rules for asynchronous invocation that the provider (at preview) and the agent (on every
request) must apply alike: the task id, the ranges of an async invoke config, and what a destination may be.

Each check returns None when the value is good, else a sentence naming the rule, so each side wraps it in its own
error type (a CheckFailure on the provider, FC's 400 on the agent)."""

from __future__ import annotations

import re
from typing import Any, Mapping
from urllib.parse import urlsplit

ARN_REGION, ARN_ACCOUNT = "local", "fleet"
FUNCTION_ARN = re.compile(r"^acs:fc:([^:]*):([^:]*):functions/([A-Za-z_][A-Za-z0-9_-]{0,63})$")

# x-fc-async-task-id: starts with a letter or _, then letters, digits, _ and -; at most 128 characters.
TASK_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
MAX_ASYNC_PAYLOAD = 128 * 1024

RETRY_ATTEMPTS_RANGE = (0, 8)
DEFAULT_RETRY_ATTEMPTS = 3
EVENT_AGE_RANGE = (1, 604800)
DEFAULT_EVENT_AGE = 86400
CONFIG_KEYS = ("max_async_retry_attempts", "max_async_event_age_in_seconds", "async_task", "destination_config")


def function_arn(name: str) -> str:
    """The ARN this fleet gives function ``name`` (FC's form, with this project's region and account)."""
    return f"acs:fc:{ARN_REGION}:{ARN_ACCOUNT}:functions/{name}"


def task_id_problem(task_id: str) -> str | None:
    if TASK_ID.match(task_id):
        return None
    return (f"x-fc-async-task-id {task_id[:140]!r} is invalid: it must start with a letter or '_', contain only "
            f"letters, digits, '_' and '-', and be at most 128 characters long")


def destination_problem(field: str, destination: Any) -> str | None:
    """A destination is a function of this fleet (its ARN) or an http(s) URL (a webhook, beyond FC)."""
    if not isinstance(destination, str) or not destination:
        return f"{field} must be a function ARN (acs:fc:{ARN_REGION}:{ARN_ACCOUNT}:functions/NAME) or an http(s) URL"
    if destination.startswith("acs:"):
        m = FUNCTION_ARN.match(destination)
        if not m:
            return (f"{field} {destination!r} is not a function ARN of the form "
                    f"acs:fc:{ARN_REGION}:{ARN_ACCOUNT}:functions/NAME (queues and event buses are not offered)")
        if (m.group(1), m.group(2)) != (ARN_REGION, ARN_ACCOUNT):
            return (f"{field} {destination!r} names region {m.group(1)!r} and account {m.group(2)!r}; functions of "
                    f"this fleet are acs:fc:{ARN_REGION}:{ARN_ACCOUNT}:functions/NAME")
        return None
    parts = urlsplit(destination)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{field} {destination!r} is neither a function ARN nor an http(s) URL with a host"
    return None


def destination_function(destination: str) -> str | None:
    """The function name of a function destination; None for a webhook."""
    m = FUNCTION_ARN.match(destination)
    return m.group(3) if m else None


def config_problems(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, rule) for every broken rule of an async invoke config given with the snake_case names."""
    problems: list[tuple[str, str]] = []
    for key in sorted(set(config) - set(CONFIG_KEYS)):
        problems.append((key, f"unknown field; the fields are {', '.join(CONFIG_KEYS)}"))
    for key, (low, high) in (("max_async_retry_attempts", RETRY_ATTEMPTS_RANGE),
                             ("max_async_event_age_in_seconds", EVENT_AGE_RANGE)):
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            problems.append((key, f"must be a whole number between {low} and {high}"))
        elif not low <= value <= high:
            problems.append((key, f"must be between {low} and {high}, not {value:g}"))
    if config.get("async_task") is not None and not isinstance(config["async_task"], bool):
        problems.append(("async_task", "must be true or false"))
    destinations = config.get("destination_config")
    if destinations is not None:
        if not isinstance(destinations, Mapping):
            return problems + [("destination_config", "must be {on_success: {destination}, on_failure: {destination}}")]
        for key in sorted(set(destinations) - {"on_success", "on_failure"}):
            problems.append((f"destination_config.{key}", "unknown field; use on_success and on_failure"))
        for key in ("on_success", "on_failure"):
            target = destinations.get(key)
            if target is None:
                continue
            if not isinstance(target, Mapping) or set(target) - {"destination"}:
                problems.append((f"destination_config.{key}", "must be {destination: ARN or URL}"))
                continue
            problem = destination_problem(f"destination_config.{key}.destination", target.get("destination"))
            if problem:
                problems.append((f"destination_config.{key}.destination", problem))
    return problems
