"""Simulated cards, for labs without a GPU. They exist only because the host's declaration says so, and they say
what they are wherever they appear: UUID ``SIM-GPU-<host>-<n>``, name ``SIMULATED fc.gpu...``, source
``simulated``. Nothing here touches hardware; an instance on a simulated card runs without a device request."""

from __future__ import annotations

from fc_common.gpu import CATALOG, HostGpus, simulated_uuid

from .inventory import GpuDevice, GpuReport


class SimulatedInventory:
    source = "simulated"

    def __init__(self, host_name: str, declared: HostGpus) -> None:
        self._devices = []
        index = 0
        for gpu_type, count in declared.simulated:
            for _ in range(count):
                self._devices.append(GpuDevice(
                    uuid=simulated_uuid(host_name, index), index=index, name=f"SIMULATED {gpu_type}",
                    gpu_type=gpu_type, memory_total_mib=CATALOG[gpu_type].memory_mb))
                index += 1

    def probe(self) -> GpuReport:
        return GpuReport(self.source, list(self._devices), driver_version=None)
