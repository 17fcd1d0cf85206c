"""The NVML inventory, through nvidia-ml-py (import name ``pynvml``). Read-only: it never changes a card's
settings (no MIG changes, no resets)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from .inventory import GpuDevice, GpuInventoryError, GpuReport


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
            devices = [self._device(i) for i in range(nvml.nvmlDeviceGetCount())]
        except nvml.NVMLError as exc:
            raise GpuInventoryError(f"NVML failed while reading the cards: {exc}") from exc
        finally:
            try:
                nvml.nvmlShutdown()
            except nvml.NVMLError:
                pass
        return GpuReport(self.source, devices, driver_version=driver)

    def _device(self, index: int) -> GpuDevice:
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
        return GpuDevice(uuid=_text(nvml.nvmlDeviceGetUUID(handle)), index=index,
                         name=_text(nvml.nvmlDeviceGetName(handle)), gpu_type=self._gpu_type,
                         memory_total_mib=int(memory.total) // (1024 * 1024),
                         memory_used_mib=int(memory.used) // (1024 * 1024), utilization_pct=utilization,
                         mig_mode=mig)
