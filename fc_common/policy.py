"""An access key's policy, in the spirit of RAM: the actions it may call and the resources it may call them on,
both with ``*`` wildcards. Allow-only: what no statement allows is refused. The provider validates with
``problems``; the agent decides with ``Policy.allows``. Standard library only.

    {"actions": ["fc:InvokeFunction"], "resources": ["acs:fc:*:*:functions/orders-*"]}

A function's resource name is ``acs:fc:<region>:<account>:functions/<name>`` (the Function resource's
``function_arn``: region "local", account "fleet"); ListFunctions is asked for on ``...:functions/*``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from .naming import function_arn

ACTIONS = ("fc:InvokeFunction", "fc:GetFunction", "fc:ListFunctions",
           # reserved for asynchronous invocation (accepted in policies now, so keys need not change later)
           "fc:GetAsyncTask", "fc:ListAsyncTasks", "fc:StopAsyncTask")
DEFAULT_POLICY = {"actions": ["fc:*"], "resources": ["*"]}
_ACTION_PATTERN = re.compile(r"^(\*|fc:[A-Za-z*]+)$")
# acs:fc:<region>:<account>:functions/<name>[/<qualifier>] ; each part letters, digits, - _ . or *
_RESOURCE_PATTERN = re.compile(r"^acs:fc:[\w.*-]+:[\w.*-]+:functions/[\w.*-]+(/[\w.*-]+)?$")


ALL_FUNCTIONS = function_arn("*")


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")


def problems(policy: Any) -> list[tuple[str, str]]:
    """Each problem as (field, rule), e.g. ("policy.actions[0]", "unknown action fc:Invoke; known: ...")."""
    if not isinstance(policy, Mapping):
        return [("policy", "must be an object with actions and resources")]
    out: list[tuple[str, str]] = []
    unknown = sorted(set(policy) - {"actions", "resources"})
    if unknown:
        out.append(("policy", f"unknown fields {unknown}; a policy has actions and resources"))
    for field, check in (("actions", _action_problem), ("resources", _resource_problem)):
        values = policy.get(field)
        if not isinstance(values, (list, tuple)) or not values:
            out.append((f"policy.{field}", "must be a non-empty list of strings"))
            continue
        for i, value in enumerate(values):
            why = check(value) if isinstance(value, str) else "must be a string"
            if why:
                out.append((f"policy.{field}[{i}]", why))
    return out


def _action_problem(action: str) -> str | None:
    if not _ACTION_PATTERN.match(action):
        return f"malformed action {action!r}: an action is fc:<Name> (or a pattern with *, such as fc:*)"
    if "*" not in action and action not in ACTIONS:
        return f"unknown action {action!r}; known actions: {', '.join(ACTIONS)}"
    if "*" in action and not any(_glob(action).match(a) for a in ACTIONS):
        return f"action pattern {action!r} matches no action; known actions: {', '.join(ACTIONS)}"
    return None


def _resource_problem(resource: str) -> str | None:
    if resource == "*" or _RESOURCE_PATTERN.match(resource):
        return None
    return (f"malformed resource {resource!r}: a resource is * or acs:fc:<region>:<account>:functions/<name>, "
            "each part letters, digits, - _ . or the wildcard *")


@dataclass(frozen=True)
class Policy:
    actions: tuple[re.Pattern[str], ...]
    resources: tuple[re.Pattern[str], ...]

    @classmethod
    def of(cls, policy: Mapping[str, Any]) -> "Policy":
        found = problems(policy)
        if found:
            raise ValueError("; ".join(f"{field}: {rule}" for field, rule in found))
        return cls(tuple(_glob(a) for a in policy["actions"]), tuple(_glob(r) for r in policy["resources"]))

    def allows(self, action: str, resource: str) -> bool:
        return (any(p.match(action) for p in self.actions)
                and any(p.match(resource) for p in self.resources))
