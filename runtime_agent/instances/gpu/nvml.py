"""The NVML inventory, through nvidia-ml-py (import name ``pynvml``). Read-only: it never changes a card's
settings (no MIG changes, no resets)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from fc_common.gpu import profile_in

from .inventory import GpuDevice, GpuInventoryError, GpuReport

MIB = 1024 * 1024


def nvml_module() -> ModuleType | None:
    """nvidia-ml-py's module, or None when it is not installed (then nvidia-smi is the inventory)."""
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlInventory:
    source = "nvml"

    def __init__(self, gpu_type: str, nvml: ModuleType) -> None:
        self._gpu_type = gpu_type
        self._nvml = nvml

    def probe(self) -> GpuReport:
        nvml = self._nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise GpuInventoryError(f"NVML failed on a host that declares real GPUs: {exc} (is the NVIDIA driver "
                                    "installed and loaded? nvidia-smi should list the cards)") from exc
        try:
            driver = _text(nvml.nvmlSystemGetDriverVersion())
            devices = []
            for i in range(nvml.nvmlDeviceGetCount()):
                devices += self._device(i)
        except nvml.NVMLError as exc:
            raise GpuInventoryError(f"NVML failed while reading the cards: {exc}") from exc
        finally:
            try:
                nvml.nvmlShutdown()
            except nvml.NVMLError:
                pass
        return GpuReport(self.source, devices, driver_version=driver)

    def _device(self, index: int) -> list[GpuDevice]:
        """The card, and when it is in MIG mode its MIG devices (the leasable units; read as they are: the agent
        never creates or destroys MIG instances)."""
        nvml = self._nvml
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        try:
            utilization: int | None = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except nvml.NVMLError:  # NVML_ERROR_NOT_SUPPORTED on some cards and on MIG parents
            utilization = None
        try:
            mig = bool(nvml.nvmlDeviceGetMigMode(handle)[0])
        except nvml.NVMLError:
            mig = False
        card = GpuDevice(uuid=_text(nvml.nvmlDeviceGetUUID(handle)), index=index,
                         name=_text(nvml.nvmlDeviceGetName(handle)), gpu_type=self._gpu_type,
                         memory_total_mib=int(memory.total) // MIB,
                         memory_used_mib=int(memory.used) // MIB, utilization_pct=utilization,
                         mig_mode=mig)
        return [card, *(self._mig_devices(handle, card) if mig else [])]

    def _mig_devices(self, handle: Any, card: GpuDevice) -> list[GpuDevice]:
        nvml, found = self._nvml, []
        for slot in range(int(nvml.nvmlDeviceGetMaxMigDeviceCount(handle))):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except nvml.NVMLError:  # NVML_ERROR_NOT_FOUND: no GPU instance in this slot
                continue
            name, memory = _text(nvml.nvmlDeviceGetName(mig)), nvml.nvmlDeviceGetMemoryInfo(mig)
            total = int(memory.total) // MIB
            # Drivers name a MIG device "<card> MIG 3g.48gb"; else its memory rounded up to whole GB says the size.
            profile = profile_in(name) or f"?g.{-(-total // 1024)}gb"
            found.append(GpuDevice(uuid=_text(nvml.nvmlDeviceGetUUID(mig)), index=slot, name=name,
                                   gpu_type=card.gpu_type, memory_total_mib=total,
                                   memory_used_mib=int(memory.used) // MIB, mig_profile=profile,
                                   parent_uuid=card.uuid))
        return found
