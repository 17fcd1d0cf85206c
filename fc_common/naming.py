"""A function's FC names, the same on both sides: its ARN (a fleet is one local region and account) and its id,
derived from the ARN so it is stable across updates, refreshes and imports. Standard library only."""

from __future__ import annotations

import uuid

ARN_REGION = "local"
ARN_ACCOUNT = "fleet"
_ID_NAMESPACE = uuid.UUID("1c6f2f8e-5f0b-4bb7-9a43-4f3b1d1a7e51")


def function_arn(name: str) -> str:
    return f"acs:fc:{ARN_REGION}:{ARN_ACCOUNT}:functions/{name}"


def function_id(name: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, function_arn(name)))
