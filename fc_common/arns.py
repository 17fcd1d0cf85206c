"""FC's ARNs as this project writes them. A fleet is one region (``local``) of one account (``fleet``), so an ARN
naming another region or account is not one of this fleet's (the agent and the provider refuse it alike)."""

from __future__ import annotations

import re

REGION = "local"
ACCOUNT = "fleet"
LAYER_NAME = r"[A-Za-z_][A-Za-z0-9_-]{0,63}"
LAYER_ARN = re.compile(rf"^acs:fc:{REGION}:{ACCOUNT}:layers/({LAYER_NAME})/versions/([1-9][0-9]*)$")
ANY_LAYER_ARN = re.compile(r"^acs:fc:[^:]*:[^:]*:layers/[^/]+/versions/[0-9]+$")


def layer_arn(name: str, version: int) -> str:
    return f"acs:fc:{REGION}:{ACCOUNT}:layers/{name}/versions/{version}"
