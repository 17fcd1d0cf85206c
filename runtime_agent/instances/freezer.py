"""Light hibernation through the cgroup freezer, written directly: the Engine API's pause/unpause round trip costs
about 10 ms, a write to the freezer file about 0.3 ms.

cgroup v1: ``/sys/fs/cgroup/freezer/<path>/freezer.state`` takes FROZEN or THAWED and reports FREEZING while the
kernel is still stopping tasks. cgroup v2: ``/sys/fs/cgroup/<path>/cgroup.freeze`` takes 1 or 0, and
``cgroup.events`` reports ``frozen 1`` once done. The path comes from the container's init process, so it does not
depend on the engine's cgroup driver or parent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


class FreezerError(Exception):
    pass


@dataclass(frozen=True)
class Freezer:
    directory: Path
    version: int  # 1 or 2

    @classmethod
    def for_pid(cls, pid: int) -> "Freezer":
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError as exc:
            raise FreezerError(f"cannot read the cgroups of pid {pid}: {exc}") from exc
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if "freezer" in controllers.split(","):
                return cls(CGROUP_ROOT / "freezer" / path.lstrip("/"), 1)
        for line in lines:
            if line.startswith("0::"):
                return cls(CGROUP_ROOT / line[3:].lstrip("/"), 2)
        raise FreezerError(f"pid {pid} is in no freezer cgroup (v1) and no unified cgroup (v2)")

    def _write(self, v1: str, v2: str) -> None:
        target = self.directory / ("freezer.state" if self.version == 1 else "cgroup.freeze")
        try:
            target.write_text(v1 if self.version == 1 else v2)
        except OSError as exc:
            raise FreezerError(f"cannot write {target}: {exc}") from exc

    def is_frozen(self) -> bool:
        try:
            if self.version == 1:
                return (self.directory / "freezer.state").read_text().strip() == "FROZEN"
            return "frozen 1" in (self.directory / "cgroup.events").read_text()
        except OSError as exc:
            raise FreezerError(f"cannot read the freezer state in {self.directory}: {exc}") from exc

    def freeze(self, timeout: float = 2.0) -> None:
        self._write("FROZEN", "1")
        deadline = time.monotonic() + timeout
        while not self.is_frozen():  # FREEZING: the kernel is still stopping tasks
            if time.monotonic() > deadline:
                self.thaw()
                raise FreezerError(f"{self.directory} did not freeze within {timeout}s")
            time.sleep(0.001)

    def thaw(self) -> None:
        self._write("THAWED", "0")
