"""What GPUs a host has, behind one interface: ``GpuInventory.probe()`` gives the cards (by UUID) and the driver.

Three implementations: NVML (``nvml.NvmlInventory``, nvidia-ml-py), ``nvidia-smi``'s CSV (``smi.SmiInventory``, the
fallback when the nvidia-ml-py module is absent), and a simulated inventory built only from the host's declaration
(``simulated.SimulatedInventory``), whose cards say SIMULATED in their name, UUID and source. ``inventory_for``
picks one from the declaration; an NVML failure on a host that declares real cards is raised, never hidden behind
a fallback.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol

from fc_common.gpu import HostGpus, profile_memory_mb, unit_key


class GpuInventoryError(Exception):
    """The host's GPUs cannot be read; the message says which source failed and why."""


@dataclass(frozen=True)
class GpuDevice:
    uuid: str  # the stable key: "GPU-..." (real) or "SIM-GPU-<host>-<n>" (simulated)
    index: int
    name: str  # as the driver reports it, or "SIMULATED fc.gpu..."
    gpu_type: str  # the fc.gpu.* type the host declares
    memory_total_mib: int
    memory_used_mib: int | None = None  # None: not reported (simulated cards, or [N/A])
    utilization_pct: int | None = None
    mig_mode: bool = False  # a parent card split into MIG devices: never leased whole
    mig_profile: str | None = None  # a MIG device: its profile ("3g.48gb"); its uuid is "MIG-..." (real)
    parent_uuid: str | None = None  # a MIG device: the card it is part of

    @property
    def unit(self) -> str | None:
        """What the ledger leases this device as (``fc_common.gpu.unit_key``), or None for a card in MIG mode."""
        if self.mig_profile is not None:
            return unit_key(self.gpu_type, profile_memory_mb(self.mig_profile))
        return None if self.mig_mode else self.gpu_type

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GpuReport:
    source: str  # "nvml", "nvidia-smi" or "simulated"
    devices: list[GpuDevice] = field(default_factory=list)
    driver_version: str | None = None

    @property
    def simulated(self) -> bool:
        return self.source == "simulated"


class GpuInventory(Protocol):
    source: str

    def probe(self) -> GpuReport: ...


def inventory_for(declared: HostGpus, host_name: str) -> GpuInventory:
    """The inventory the declaration asks for. Real cards: NVML, or nvidia-smi when declared so or when the
    nvidia-ml-py module is not installed (an NVML that is installed but fails is an error, reported by probe)."""
    from .simulated import SimulatedInventory

    if declared.is_simulated:
        return SimulatedInventory(host_name, declared)
    assert declared.gpu_type is not None
    from .smi import SmiInventory

    if declared.source == "nvidia-smi":
        return SmiInventory(declared.gpu_type)
    from .nvml import NvmlInventory, nvml_module

    module = nvml_module()
    if module is None:
        return SmiInventory(declared.gpu_type)
    return NvmlInventory(declared.gpu_type, module)
