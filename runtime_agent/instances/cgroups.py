"""A running container's memory and CPU limits, written to its cgroup directly (stem cells, issue 15).

The engine's update call (``docker update``) writes the same files through runc, but costs 35-45 ms on this kind of
machine (most of a stem cell's budget); a write here costs microseconds. The agent writes the limits here before
the function's code is mounted, then records the same values with the engine's update call off the critical path,
so that ``docker inspect`` (and a container restart) agree with what the kernel enforces.

cgroup v1: ``memory/<path>/memory.limit_in_bytes`` and ``memory.memsw.limit_in_bytes`` (memory plus swap: no
swap, as ``memswap_limit`` equal to ``mem_limit`` gives), ``cpu/<path>/cpu.cfs_period_us`` and
``cpu.cfs_quota_us``. cgroup v2: ``memory.max``, ``memory.swap.max`` and ``cpu.max``. The path comes from the
container's init process, as for the freezer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .freezer import CGROUP_ROOT

CPU_PERIOD_US = 100_000


class CgroupError(Exception):
    pass


def _quota(cpu: float) -> int:
    return max(1000, int(cpu * CPU_PERIOD_US))


@dataclass(frozen=True)
class CgroupLimits:
    memory_dir: Path
    cpu_dir: Path
    version: int

    @classmethod
    def for_pid(cls, pid: int) -> "CgroupLimits":
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError as exc:
            raise CgroupError(f"cannot read the cgroups of pid {pid}: {exc}") from exc
        dirs: dict[str, Path] = {}
        for line in lines:
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(","):
                if name in ("memory", "cpu"):
                    dirs[name] = CGROUP_ROOT / controllers / path.lstrip("/")
        if "memory" in dirs and "cpu" in dirs:
            return cls(dirs["memory"], dirs["cpu"], 1)
        unified = next((line[3:] for line in lines if line.startswith("0::")), None)
        if unified is None:
            raise CgroupError(f"pid {pid} has no memory and cpu cgroups")
        directory = CGROUP_ROOT / unified.lstrip("/")
        return cls(directory, directory, 2)

    def _write(self, path: Path, value: str) -> None:
        try:
            path.write_text(value)
        except OSError as exc:
            raise CgroupError(f"cannot write {value} to {path}: {exc}") from exc

    def _read_int(self, path: Path) -> int:
        text = path.read_text().strip()
        return 1 << 62 if text == "max" else int(text)

    def set_memory(self, memory_mb: int) -> None:
        limit = memory_mb * 1024 * 1024
        if self.version == 2:
            self._write(self.memory_dir / "memory.max", str(limit))
            self._write(self.memory_dir / "memory.swap.max", "0")
            return
        memsw = self.memory_dir / "memory.memsw.limit_in_bytes"
        mem = self.memory_dir / "memory.limit_in_bytes"
        # memory <= memory+swap at every step: raise the sum first, lower it last.
        if memsw.exists() and limit > self._read_int(memsw):
            self._write(memsw, str(limit))
            self._write(mem, str(limit))
        else:
            self._write(mem, str(limit))
            if memsw.exists():
                self._write(memsw, str(limit))

    def set_cpu(self, cpu: float) -> None:
        if self.version == 2:
            self._write(self.cpu_dir / "cpu.max", f"{_quota(cpu)} {CPU_PERIOD_US}")
            return
        self._write(self.cpu_dir / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        self._write(self.cpu_dir / "cpu.cfs_quota_us", str(_quota(cpu)))

    def memory_mb(self) -> int:
        name = "memory.max" if self.version == 2 else "memory.limit_in_bytes"
        return self._read_int(self.memory_dir / name) // (1024 * 1024)

    def cpu_quota(self) -> int:
        if self.version == 2:
            return int((self.cpu_dir / "cpu.max").read_text().split()[0])
        return int((self.cpu_dir / "cpu.cfs_quota_us").read_text())
