"""The ``nvidia-smi`` inventory: one CSV query, parsed. The fallback when the nvidia-ml-py module is absent, and a
second opinion for bench/gpu_check.sh (it compares both)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess

from fc_common.gpu import profile_memory_mb

from .inventory import GpuDevice, GpuInventoryError, GpuReport

QUERY_FIELDS = ("index", "uuid", "name", "memory.total", "memory.used", "utilization.gpu", "driver_version",
                "mig.mode.current")
QUERY = ["nvidia-smi", f"--query-gpu={','.join(QUERY_FIELDS)}", "--format=csv,noheader,nounits"]
LIST = ["nvidia-smi", "-L"]  # lists each card's MIG devices under it (the CSV query shows none)
TIMEOUT_SECONDS = 15
_GPU_LINE = re.compile(r"^GPU (\d+): .*\(UUID: (GPU-[^)]+)\)\s*$")
_MIG_LINE = re.compile(r"^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^)]+)\)\s*$")


def _number(value: str) -> int | None:
    """nvidia-smi writes "[N/A]", "[Not Supported]" or "N/A" for what a card does not report."""
    value = value.strip()
    try:
        return int(float(value))
    except ValueError:
        return None


def parse_csv(text: str, gpu_type: str) -> GpuReport:
    """Parses the output of ``QUERY``; GpuInventoryError names the line that does not fit."""
    devices, drivers = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(QUERY_FIELDS):
            raise GpuInventoryError(f"nvidia-smi output line {number} has {len(cells)} fields, expected "
                                    f"{len(QUERY_FIELDS)} ({', '.join(QUERY_FIELDS)}): {line!r}")
        index, uuid, name, total, used, util, driver, mig = cells
        if _number(index) is None or not uuid.startswith(("GPU-", "MIG-")) or _number(total) is None:
            raise GpuInventoryError(f"nvidia-smi output line {number} is not a GPU row: {line!r}")
        devices.append(GpuDevice(uuid=uuid, index=int(index), name=name, gpu_type=gpu_type,
                                 memory_total_mib=int(_number(total) or 0), memory_used_mib=_number(used),
                                 utilization_pct=_number(util), mig_mode=mig.lower() == "enabled"))
        drivers.add(driver)
    return GpuReport("nvidia-smi", devices, driver_version=", ".join(sorted(drivers)) or None)


def parse_list(text: str, report: GpuReport) -> GpuReport:
    """Adds the MIG devices ``nvidia-smi -L`` lists under each card in MIG mode to ``report`` (from the CSV query).
    A MIG line under no card, or under a card not in MIG mode, is a named error."""
    parents = {d.uuid: d for d in report.devices}
    devices, parent = list(report.devices), None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        card, mig = _GPU_LINE.match(line), _MIG_LINE.match(line)
        if card:
            parent = parents.get(card.group(2))
        elif mig:
            if parent is None or not parent.mig_mode:
                raise GpuInventoryError(f"nvidia-smi -L line {number} is a MIG device under no card in MIG mode: "
                                        f"{line!r}")
            profile = mig.group(1)
            devices.append(GpuDevice(uuid=mig.group(3), index=int(mig.group(2)), name=f"{parent.name} MIG {profile}",
                                     gpu_type=parent.gpu_type, memory_total_mib=profile_memory_mb(profile),
                                     mig_profile=profile, parent_uuid=parent.uuid))
        else:
            raise GpuInventoryError(f"nvidia-smi -L line {number} is neither a GPU nor a MIG line: {line!r}")
    return dataclasses.replace(report, devices=devices)


class SmiInventory:
    source = "nvidia-smi"

    def __init__(self, gpu_type: str, binary: str = "nvidia-smi") -> None:
        self._gpu_type = gpu_type
        self._binary = binary

    def probe(self) -> GpuReport:
        path = shutil.which(self._binary)
        if path is None:
            raise GpuInventoryError("nvidia-smi is not on the agent's PATH: install the NVIDIA driver (it ships "
                                    "nvidia-smi), or declare no GPUs for this host")
        report = parse_csv(self._run(path, QUERY[1:]), self._gpu_type)
        if any(d.mig_mode for d in report.devices):
            report = parse_list(self._run(path, LIST[1:]), report)
        return report

    @staticmethod
    def _run(path: str, arguments: list[str]) -> str:
        try:
            done = subprocess.run([path, *arguments], capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GpuInventoryError(f"nvidia-smi failed: {exc}") from exc
        if done.returncode != 0:
            raise GpuInventoryError(f"nvidia-smi exited with {done.returncode}: "
                                    f"{(done.stderr or done.stdout).strip()[:300]}")
        return done.stdout
