"""Where the `fc` CLI finds the fleet: a Pulumi stack's Fleet resource, or a fleet file (as `fc-lab up` writes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Optional

from .._remote.fleetops import FleetConnection
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


def from_stack(stack: str, cwd: Optional[Path], fleet_resource: Optional[str]) -> FleetConnection:
    """The connection output of the stack's Fleet resource (a secret, hence --show-secrets)."""
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
    resources = json.loads(proc.stdout).get("deployment", {}).get("resources") or []
    fleets = {}
    for res in resources:
        connection = _plain((res.get("outputs") or {}).get("connection"))
        if isinstance(connection, dict) and "hosts" in connection and "agent_versions" in res.get("outputs", {}):
            fleets[res["urn"].rsplit("::", 1)[-1]] = connection
    if fleet_resource is not None:
        if fleet_resource not in fleets:
            raise UsageError(f"stack {stack} has no Fleet named {fleet_resource} (has: {', '.join(fleets) or 'none'})")
        return FleetConnection.from_dict(fleets[fleet_resource])
    if len(fleets) != 1:
        raise UsageError(f"stack {stack} has {len(fleets)} Fleet resources ({', '.join(fleets) or 'none'}); "
                         "pick one with --fleet-resource")
    return FleetConnection.from_dict(next(iter(fleets.values())))
