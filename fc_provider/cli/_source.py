"""Where the `fc` CLI finds the fleet: a Pulumi stack's Fleet resource, or a fleet file (as `fc-lab up` writes)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Optional

from .._remote.fleetops import FleetConnection
from .._remote.signer import ENV_KEY_ID, ENV_KEY_SECRET, Credentials
from ._errors import UsageError

_SECRET_SIG = "4dabf18193072939515e22adb298388d"  # how `pulumi stack export --show-secrets` wraps a secret


def default_fleet_file() -> Path:
    return Path(os.environ.get("FC_LAB_DIR") or "/var/lib/fc-lab") / "fleet.json"


def from_fleet_file(path: Path) -> FleetConnection:
    try:
        data = json.loads(path.read_text())
        key = Path(data["ssh_private_key_path"]).read_text()
        hosts = [{"name": h["name"], "address": h["address"], "port": h.get("port", 22),
                  "user": h.get("user", data.get("ssh_user", "root")), "host_public_key": h["host_public_key"],
                  "labels": h.get("labels") or {}, "capacity": h.get("capacity")} for h in data["hosts"]]
    except OSError as exc:
        raise UsageError(f"cannot read fleet file {path}: {exc.strerror or exc}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"fleet file {path} is not a fleet file (hosts, ssh_private_key_path): {exc}") from exc
    # Token "": each host's token is read from its agent config over SSH (SSH access is the credential).
    return FleetConnection.from_dict({"hosts": hosts, "private_key": key, "token": "",
                                      "control_port": data.get("control_port", 7701),
                                      "invoke_port": data.get("invoke_port", 9000)})


def _plain(value: Any) -> Any:
    if isinstance(value, dict) and _SECRET_SIG in value:
        return json.loads(value["plaintext"]) if "plaintext" in value else None
    return value


@functools.lru_cache(maxsize=4)
def _stack_resources(stack: str, cwd: Optional[Path]) -> tuple[dict[str, Any], ...]:
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise UsageError("the Pulumi CLI is not on PATH; use --fleet-file instead of --stack")
    argv = [pulumi, "stack", "export", "--show-secrets", "--stack", stack, "--non-interactive"]
    if cwd is not None:
        argv += ["--cwd", str(cwd)]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"cannot read stack {stack}: {reason}")
    return tuple(json.loads(proc.stdout).get("deployment", {}).get("resources") or [])


def _pick(kind: str, found: dict[str, Any], wanted: Optional[str], stack: str, flag: str) -> Any:
    if wanted is not None:
        if wanted not in found:
            raise UsageError(f"stack {stack} has no {kind} named {wanted} (has: {', '.join(found) or 'none'})")
        return found[wanted]
    if len(found) != 1:
        raise UsageError(f"stack {stack} has {len(found)} {kind} resources ({', '.join(found) or 'none'}); "
                         f"pick one with {flag}")
    return next(iter(found.values()))


def from_stack(stack: str, cwd: Optional[Path], fleet_resource: Optional[str]) -> FleetConnection:
    """The connection output of the stack's Fleet resource (a secret, hence --show-secrets)."""
    fleets = {}
    for res in _stack_resources(stack, cwd):
        connection = _plain((res.get("outputs") or {}).get("connection"))
        if isinstance(connection, dict) and "hosts" in connection and "agent_versions" in res.get("outputs", {}):
            fleets[res["urn"].rsplit("::", 1)[-1]] = connection
    return FleetConnection.from_dict(_pick("Fleet", fleets, fleet_resource, stack, "--fleet-resource"))


def credentials(stack: Optional[str], cwd: Optional[Path], key_resource: Optional[str]) -> Credentials:
    """The key invocations sign with: ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET (what FC's tools read), else the stack's
    fc.AccessKey (its secret read with --show-secrets)."""
    from_env = Credentials.from_env()
    if from_env is not None and key_resource is None:
        return from_env
    if stack is None:
        raise UsageError(f"no access key: set {ENV_KEY_ID} and {ENV_KEY_SECRET}, or use --stack to sign with the "
                         "stack's fc.AccessKey")
    keys = {}
    for res in _stack_resources(stack, cwd):
        outputs = res.get("outputs") or {}
        if res.get("type") == "pulumi:pulumi:Stack":
            continue  # the program's own exports may repeat a key's outputs
        if "access_key_id" in outputs and "access_key_secret" in outputs:
            keys[res["urn"].rsplit("::", 1)[-1]] = Credentials(str(_plain(outputs["access_key_id"])),
                                                             str(_plain(outputs["access_key_secret"])))
    if not keys:
        raise UsageError(f"stack {stack} has no fc.AccessKey; declare one, or set {ENV_KEY_ID} and {ENV_KEY_SECRET}")
    return _pick("AccessKey", keys, key_resource, stack, "--access-key")
