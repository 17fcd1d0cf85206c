"""The GPU checks of bench/gpu_check.sh, for a machine with a real NVIDIA GPU (see that script). Read-only towards
the cards: it queries NVML and nvidia-smi, starts containers and freezes one; it never changes MIG, clocks, power
or persistence settings and never resets a card. Every step prints PASS, FAIL or NOT CHECKED with the reason."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fc_common.gpu import GpuNeed, parse_host_gpus  # noqa: E402
from runtime_agent.instances.gpu import GpuInventoryError, HostCards  # noqa: E402
from runtime_agent.instances.gpu.nvml import NvmlInventory, nvml_module  # noqa: E402
from runtime_agent.instances.gpu.smi import SmiInventory  # noqa: E402
from runtime_agent.state.cardstore import CardStore  # noqa: E402

GPU_TYPE = os.environ.get("GPU_TYPE", "fc.gpu.ada.1")  # only a label here: the checks do not depend on it
results: list[tuple[str, str, str]] = []


def report(step: str, outcome: str, detail: str) -> None:
    results.append((step, outcome, detail))
    print(f"{outcome:<12} {step}: {detail}", flush=True)


def inventories() -> tuple[list, list]:
    smi, nvml = [], []
    try:
        smi = SmiInventory(GPU_TYPE).probe().devices
        report("nvidia-smi inventory", "PASS", json.dumps([d.to_json() for d in smi]))
    except GpuInventoryError as exc:
        report("nvidia-smi inventory", "NOT CHECKED", str(exc))
    module = nvml_module()
    if module is None:
        report("NVML inventory", "NOT CHECKED", "nvidia-ml-py is not installed (pip install nvidia-ml-py)")
    else:
        try:
            found = NvmlInventory(GPU_TYPE, module).probe()
            nvml = found.devices
            report("NVML inventory", "PASS", f"driver {found.driver_version}: "
                   + json.dumps([d.to_json() for d in nvml]))
        except GpuInventoryError as exc:
            report("NVML inventory", "FAIL" if smi else "NOT CHECKED", str(exc))
    if smi and nvml:
        same = [d.uuid for d in smi] == [d.uuid for d in nvml]
        report("NVML and nvidia-smi agree on UUIDs", "PASS" if same else "FAIL",
               f"nvml {[d.uuid for d in nvml]} vs nvidia-smi {[d.uuid for d in smi]}")
    else:
        report("NVML and nvidia-smi agree on UUIDs", "NOT CHECKED", "needs both inventories")
    return nvml or smi, nvml


def ledger(devices: list) -> None:
    if not devices:
        report("second lease of a card refused", "NOT CHECKED", "no card found")
        return
    with tempfile.TemporaryDirectory() as folder:
        store = CardStore(Path(folder) / "agent.db")
        inventory = NvmlInventory(GPU_TYPE, nvml_module()) if nvml_module() else SmiInventory(GPU_TYPE)
        cards = HostCards(parse_host_gpus({"type": GPU_TYPE}), "check", store, inventory, lambda: {})
        cards.refresh()
        need = GpuNeed(GPU_TYPE, len(cards.report.devices))
        first = cards.lease("check-a", "check", need)
        second = cards.lease("check-b", "check", GpuNeed(GPU_TYPE, 1))
        direct = store.lease([devices[0].uuid], "check-c", "check")
        ok = first is not None and second is None and direct is False
        report("second lease of a card refused", "PASS" if ok else "FAIL",
               f"first lease {first}, second lease {second}, direct row for {devices[0].uuid}: {direct}")


def container(devices: list) -> None:
    image = os.environ.get("IMAGE", "")
    socket = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if shutil.which("docker") is None and not Path(socket.removeprefix("unix://")).exists():
        report("container sees exactly its card", "NOT CHECKED", "no Docker on this machine")
        report("freeze and thaw with GPU memory held", "NOT CHECKED", "no Docker on this machine")
        return
    from runtime_agent.instances.driver import ContainerSpec, DockerDriver, DriverError
    from runtime_agent.instances.freezer import Freezer
    from runtime_agent.instances.gpu.support import probe

    try:
        driver = DockerDriver(socket)
        support = probe(driver.engine_info(), simulated=False)
    except DriverError as exc:
        for step in ("container sees exactly its card", "freeze and thaw with GPU memory held"):
            report(step, "NOT CHECKED", f"no Docker engine answers: {exc}")
        return
    if support.mode is None or not devices or not image:
        why = support.problem or ("no card found" if not devices else "set IMAGE to a local image with a shell")
        report("container sees exactly its card", "NOT CHECKED", why)
    else:
        uuid = devices[-1].uuid
        ids = (f"nvidia.com/gpu={uuid}",) if support.mode == "cdi" else (uuid,)
        spec = ContainerSpec(name=f"fc-gpu-check-{secrets.token_hex(3)}", image=image,
                             command=["sh", "-c", "nvidia-smi -L; sleep 2"],
                             environment={"NVIDIA_VISIBLE_DEVICES": uuid,
                                          "NVIDIA_DRIVER_CAPABILITIES": "compute,utility"},
                             labels={"fc.agent": "gpu-check"}, read_only_binds={}, memory_mb=512, cpu=1,
                             tmp_size_mb=64, user="0:0", gpu_driver=support.mode, gpu_device_ids=ids)
        try:
            info = driver.start(spec)
            time.sleep(3)
            logs = subprocess.run(["docker", "logs", info.id], capture_output=True, text=True, timeout=20).stdout
            seen = [line for line in logs.splitlines() if "UUID:" in line]
            ok = len(seen) == 1 and uuid in seen[0]
            report("container sees exactly its card", "PASS" if ok else "FAIL", f"{support.mode}: {seen}")
            driver.destroy(info.id)
        except (DriverError, subprocess.SubprocessError) as exc:
            report("container sees exactly its card", "FAIL", str(exc))
    hold = os.environ.get("CUDA_HOLD_CMD")
    if support.mode is None or not devices or not os.environ.get("CUDA_IMAGE") or not hold:
        report("freeze and thaw with GPU memory held", "NOT CHECKED",
               support.problem or "set CUDA_IMAGE and CUDA_HOLD_CMD (a command that allocates GPU memory and waits)")
        return
    uuid = devices[-1].uuid
    spec = ContainerSpec(name=f"fc-gpu-hold-{secrets.token_hex(3)}", image=os.environ["CUDA_IMAGE"],
                         command=["sh", "-c", hold], environment={"NVIDIA_VISIBLE_DEVICES": uuid,
                                                                  "NVIDIA_DRIVER_CAPABILITIES": "compute,utility"},
                         labels={"fc.agent": "gpu-check"}, read_only_binds={}, memory_mb=4096, cpu=2,
                         tmp_size_mb=64, user="0:0", gpu_driver=support.mode,
                         gpu_device_ids=(f"nvidia.com/gpu={uuid}",) if support.mode == "cdi" else (uuid,))
    info = driver.start(spec)
    try:
        used = []
        for _ in range(3):
            time.sleep(10 if not used else 2)
            used.append(next(d.memory_used_mib for d in SmiInventory(GPU_TYPE).probe().devices if d.uuid == uuid))
            if len(used) == 1:
                Freezer.for_pid(driver.inspect(info.id).pid).freeze()
        Freezer.for_pid(driver.inspect(info.id).pid).thaw()
        alive = driver.exit_report(info.id) is None
        ok = used[0] > 0 and used[0] == used[1] == used[2] and alive
        report("freeze and thaw with GPU memory held", "PASS" if ok else "FAIL",
               f"GPU memory MiB before/frozen/frozen: {used}; running after thaw: {alive}")
    finally:
        driver.destroy(info.id)


def cuda_checkpoint(nvml: list) -> None:
    tool = shutil.which("cuda-checkpoint")
    if tool is None:
        report("cuda-checkpoint --get-state", "NOT CHECKED", "cuda-checkpoint is not on PATH (driver >= 550 needed)")
        return
    done = subprocess.run([tool, "--help"], capture_output=True, text=True, timeout=10)
    report("cuda-checkpoint --get-state", "PASS" if done.returncode == 0 else "FAIL",
           "present; --get-state needs a CUDA process (--pid), not run on any here")


if __name__ == "__main__":
    devices, nvml = inventories()
    ledger(devices)
    container(devices)
    cuda_checkpoint(nvml)
    print("\nNOT CHECKED: " + ("; ".join(s for s, o, _ in results if o == "NOT CHECKED") or "nothing"))
    sys.exit(1 if any(o == "FAIL" for _, o, _ in results) else 0)
