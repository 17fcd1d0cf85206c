"""GPU cards on a host: inventory (NVML, nvidia-smi, simulated), Docker's GPU support, and the card ledger."""

from .cards import SIMULATED_LABEL, UUIDS_LABEL, HostCards
from .inventory import GpuDevice, GpuInventory, GpuInventoryError, GpuReport, inventory_for

__all__ = ["SIMULATED_LABEL", "UUIDS_LABEL", "GpuDevice", "GpuInventory", "GpuInventoryError", "GpuReport",
           "HostCards", "inventory_for"]
