"""Simulated cards, for labs without a GPU. They exist only because the host's declaration says so, and they say
what they are wherever they appear: UUID ``SIM-GPU-<host>-<n>``, name ``SIMULATED fc.gpu...``, source
``simulated``; a simulated MIG device is ``SIM-GPU-<host>-<n>-MIG-<m>``, named ``SIMULATED fc.gpu... MIG 3g.48gb``.
Nothing here touches hardware; an instance on a simulated card runs without a device request."""

from __future__ import annotations

from fc_common.gpu import CATALOG, HostGpus, profile_memory_mb, simulated_uuid

from .inventory import GpuDevice, GpuReport


class SimulatedInventory:
    source = "simulated"

    def __init__(self, host_name: str, declared: HostGpus) -> None:
        self._devices = []
        index = 0
        for gpu_type, count, profiles in declared.simulated:
            for _ in range(count):
                parent = simulated_uuid(host_name, index)
                self._devices.append(GpuDevice(
                    uuid=parent, index=index, name=f"SIMULATED {gpu_type}", gpu_type=gpu_type,
                    memory_total_mib=CATALOG[gpu_type].memory_mb, mig_mode=bool(profiles)))
                for n, profile in enumerate(profiles):  # the declared MIG layout: devices, no hardware
                    self._devices.append(GpuDevice(
                        uuid=f"{parent}-MIG-{n}", index=n, name=f"SIMULATED {gpu_type} MIG {profile}",
                        gpu_type=gpu_type, memory_total_mib=profile_memory_mb(profile), mig_profile=profile,
                        parent_uuid=parent))
                index += 1

    def probe(self) -> GpuReport:
        return GpuReport(self.source, list(self._devices), driver_version=None)
