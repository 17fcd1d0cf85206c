"""Trigger rules both sides apply: the provider at preview, the agent when a trigger is stored."""

from __future__ import annotations

import hashlib
import re

MAX_PER_FUNCTION = 50
TYPES = ("http", "timer", "oss")
TRIGGER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
QUALIFIER = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
HTTP_METHODS = ("HEAD", "DELETE", "POST", "GET", "OPTIONS", "PUT", "PATCH")
AUTH_TYPES = ("anonymous", "function", "jwt")
MAX_TIMER_PAYLOAD = 128 * 1024
OSS_EVENTS = (
    "oss:ObjectCreated:*", "oss:ObjectCreated:PutObject", "oss:ObjectCreated:PostObject",
    "oss:ObjectCreated:CompleteMultipartUpload", "oss:ObjectCreated:PutSymlink", "oss:ObjectCreated:CopyObject",
    "oss:ObjectCreated:InitiateMultipartUpload", "oss:ObjectCreated:UploadPart", "oss:ObjectCreated:UploadPartCopy",
    "oss:ObjectCreated:AppendObject", "oss:ObjectRemoved:*", "oss:ObjectRemoved:DeleteObject",
    "oss:ObjectRemoved:DeleteObjects", "oss:ObjectRemoved:AbortMultipartUpload",
    "oss:ObjectModified:UpdateObjectMeta",
)


def trigger_id(function: str, trigger: str) -> str:
    """FC's (and Terraform's) trigger id: ``function:trigger``."""
    return f"{function}:{trigger}"


def url_label(function: str, trigger: str) -> str:
    """The DNS label that names one HTTP trigger, as FC's ``<name-prefix>-<10 random>.<region>.fcapp.run``: a
    readable prefix of the function name plus 10 characters of a digest of the trigger id, so it is stable (every
    host and every refresh computes the same one) and unique. Lower case, at most 63 characters."""
    prefix = re.sub(r"[^a-z0-9-]+", "-", function.lower()).strip("-")[:40] or "fn"
    digest = hashlib.sha256(trigger_id(function, trigger).encode()).hexdigest()[:10]
    return f"{prefix}-{digest}"


# The front door's form of an HTTP trigger's URL (a custom domain's route, rewritten by HAProxy on the edge host):
# ``/_fd/<label>/<the domain's path>``. Like the path form ``/_t/<label>/`` the prefix is stripped before the
# function sees the request, but it is not the client's URL: the client asked the domain for ``/<path>``, so a
# ``function`` trigger verifies the signature against that path and a root-relative ``Location`` is left as the
# function wrote it. It grants nothing the domain does not: the trigger's auth type applies, and a signed request
# cannot be replayed (its nonce is accepted once).
FRONT_DOOR_PREFIX = "/_fd/"


def front_door_prefix(label: str) -> str:
    """What the front door puts before a domain's path to reach the HTTP trigger named by ``label``."""
    return f"{FRONT_DOOR_PREFIX}{label}"
