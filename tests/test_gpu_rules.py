"""GPU rules without a host: the card catalog and gpu_config at preview, the host declaration, the nvidia-smi
parser, the NVML adapter, and NVML on this machine (no driver: a named error, never a fallback).

No GPU exists here. The nvidia-smi fixtures are written in nvidia-smi's exact CSV shape (tests/data/README.md says
they were not recorded on a real card); the NVML adapter runs against a stand-in module with NVML's call surface,
because the real library cannot load without a driver. The real pynvml is exercised for its failure."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pynvml
import pytest

import fc_provider as fc
from fc_common import gpu
from fc_provider._model.validation import FleetModel, check
from fc_provider.function import FunctionProvider
from runtime_agent.instances.gpu import GpuInventoryError, inventory_for
from runtime_agent.instances.gpu.nvml import NvmlInventory
from runtime_agent.instances.gpu.smi import SmiInventory, parse_csv
from runtime_agent.instances.gpu.support import probe

DATA = Path(__file__).parent / "data"
GPU_FN = {"function_name": "sd", "runtime": "custom-container", "cpu": 8, "memory_size": 65536,
          "custom_container_config": {"image": "sd:1"},
          "gpu_config": {"gpu_type": "fc.gpu.ada.1", "gpu_memory_size": 49152}}


def failures(change: dict) -> list[tuple[str, str]]:
    result = FunctionProvider().check({}, {**GPU_FN, **change})
    return [(f.property, f.reason) for f in result.failures]


def test_a_whole_card_function_passes_preview() -> None:
    assert failures({}) == []
    assert failures({"gpu_config": {"gpu_type": "fc.gpu.ada.1", "gpu_memory_size": 98304}, "cpu": 16,
                     "memory_size": 131072}) == []  # two cards: FC multiplies the choices
    assert failures({"gpu_config": {"gpu_type": "fc.gpu.tesla.1", "gpu_memory_size": 16384}, "cpu": 0.5,
                     "memory_size": 1024}) == []


@pytest.mark.parametrize(("change", "prop", "phrase"), [
    ({"gpu_config": {"gpu_type": "fc.gpu.volta.9", "gpu_memory_size": 16384}}, "gpu_config", "not a known card"),
    ({"gpu_config": {"gpu_type": "fc.gpu.ada.1", "gpu_memory_size": 8192}}, "gpu_config",
     "Docker cannot cap the GPU memory"),
    ({"gpu_config": {"gpu_type": "fc.gpu.tesla.1", "gpu_memory_size": 5120}, "cpu": 1, "memory_size": 2048},
     "gpu_config", "whole number of fc.gpu.tesla.1 cards"),
    ({"runtime": "python3.11", "custom_container_config": None, "code_checksum": "0" * 64}, "gpu_config",
     "only for runtime custom-container"),
    ({"cpu": 6}, "cpu", "one of 4, 8, 16"),
    ({"cpu": None}, "cpu", "cpu is required with gpu_config"),
    ({"memory_size": 40960}, "memory_size", "32768, 65536, 98304 MB"),
    ({"gpu_config": {"gpu_type": "fc.gpu.ada.1", "gpu_memory_size": 49152 * 9}}, "gpu_config", "at most 8"),
])
def test_bad_gpu_config_names_the_property_and_the_rule(change: dict, prop: str, phrase: str) -> None:
    found = failures(change)
    assert any(p == prop and phrase in r for p, r in found), found


def test_without_gpu_config_the_cpu_limits_stay() -> None:
    found = failures({"gpu_config": None, "memory_size": 65536})
    assert any(p == "memory_size" and "without gpu_config" in r for p, r in found), found


def test_catalog_is_data_with_fc_card_types() -> None:
    assert set(gpu.CATALOG) >= {"fc.gpu.tesla.1", "fc.gpu.ampere.1", "fc.gpu.ada.1", "fc.gpu.ada.2",
                                "fc.gpu.ada.3", "fc.gpu.hopper.1", "fc.gpu.xpu.1"}
    assert gpu.card_type("g1").name == "fc.gpu.tesla.1"
    assert gpu.CATALOG["fc.gpu.hopper.1"].memory_mb == 98304


def test_typed_gpu_config_gives_the_same_dict() -> None:
    typed = fc.FunctionArgs(runtime="custom-container", gpu_config=fc.GpuConfigArgs(gpu_type="fc.gpu.ada.1",
                                                                                     gpu_memory_size=49152))
    assert typed.gpu_config == {"gpu_type": "fc.gpu.ada.1", "gpu_memory_size": 49152}
    host = fc.HostArgs(name="g", address="10.0.0.1", host_public_key="ssh-ed25519 AAAA",
                       gpus=fc.HostGpusArgs(simulated=[fc.SimulatedGpuArgs(type="fc.gpu.tesla.1", count=2)]))
    assert host.to_dict()["gpus"] == {"simulated": [{"type": "fc.gpu.tesla.1", "count": 2}]}
    assert "gpus" not in fc.HostArgs(name="c", address="10.0.0.2", host_public_key="ssh-ed25519 AAAA").to_dict()


@pytest.mark.parametrize(("gpus", "phrase"), [
    ({"simulated": [{"type": "fc.gpu.tesla.1", "count": 1}], "type": "fc.gpu.ada.1"}, "never both"),
    ({"simulated": [{"type": "fc.gpu.nope", "count": 1}]}, "not a known card type"),
    ({"simulated": [{"type": "fc.gpu.tesla.1", "count": 0}]}, "count must be an integer from 1 to 64"),
    ({"source": "nvml"}, "type is required for real cards"),
    ({"type": "fc.gpu.ada.1", "source": "guess"}, "source must be one of nvml, nvidia-smi"),
])
def test_host_gpu_declaration_rules(gpus: dict, phrase: str) -> None:
    host = {"name": "a", "address": "10.0.0.1", "host_public_key": "ssh-ed25519 AAAA", "gpus": gpus}
    found = check(FleetModel, {"hosts": [host], "ssh_private_key": "k"})
    assert any(p == "hosts" and phrase in r for p, r in found), found


def test_nvidia_smi_csv_is_parsed_by_uuid() -> None:
    report = parse_csv((DATA / "nvidia-smi-2xA10.csv").read_text(), "fc.gpu.ampere.1")
    assert report.source == "nvidia-smi" and report.driver_version == "535.104.05"
    assert [(d.index, d.uuid, d.name, d.memory_total_mib, d.memory_used_mib, d.utilization_pct)
            for d in report.devices] == [
        (0, "GPU-5f3c2a1e-8b7d-4c6e-9a0f-1d2e3f4a5b6c", "NVIDIA A10", 23028, 4, 0),
        (1, "GPU-9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b", "NVIDIA A10", 23028, 18211, 87)]
    mig = parse_csv((DATA / "nvidia-smi-mig.csv").read_text(), "fc.gpu.hopper.1")
    assert [(d.mig_mode, d.utilization_pct) for d in mig.devices] == [(True, None), (False, 0)]


def test_nvidia_smi_output_that_does_not_fit_is_a_named_error() -> None:
    with pytest.raises(GpuInventoryError, match="line 1 has 3 fields"):
        parse_csv("0, GPU-x, A10\n", "fc.gpu.ampere.1")
    with pytest.raises(GpuInventoryError, match="not a GPU row"):
        parse_csv("No devices were found, a, b, c, d, e, f, g\n", "fc.gpu.ampere.1")


def test_nvidia_smi_missing_here_says_what_to_install() -> None:
    with pytest.raises(GpuInventoryError, match="nvidia-smi is not on the agent's PATH: install the NVIDIA driver"):
        SmiInventory("fc.gpu.ada.1").probe()


def test_real_nvml_on_this_machine_fails_loudly_never_falls_back() -> None:
    inventory = inventory_for(gpu.parse_host_gpus({"type": "fc.gpu.ada.1"}), "h")
    assert isinstance(inventory, NvmlInventory)  # nvidia-ml-py is installed: NVML, not a silent nvidia-smi
    with pytest.raises(GpuInventoryError, match="NVML failed on a host that declares real GPUs: NVML Shared "
                                                "Library Not Found"):
        inventory.probe()


class _StandInNvml:
    """NVML's call surface with the values two A10 cards report (a stand-in: the real library needs a driver)."""

    NVMLError = pynvml.NVMLError

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.cards = [("GPU-5f3c2a1e-8b7d-4c6e-9a0f-1d2e3f4a5b6c", 23028, 4, 0),
                      ("GPU-9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b", 23028, 18211, 87)]

    def nvmlInit(self) -> None:
        self.calls.append("init")

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlSystemGetDriverVersion(self) -> str:
        return "535.104.05"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.cards)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return self.cards[h][0]

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return b"NVIDIA A10"  # older bindings return bytes

    def nvmlDeviceGetMemoryInfo(self, h: int) -> SimpleNamespace:
        mib = 1024 * 1024
        return SimpleNamespace(total=self.cards[h][1] * mib, used=self.cards[h][2] * mib)

    def nvmlDeviceGetUtilizationRates(self, h: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=self.cards[h][3], memory=0)

    def nvmlDeviceGetMigMode(self, h: int) -> list[int]:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)


def test_nvml_adapter_agrees_with_the_nvidia_smi_parser() -> None:
    stand_in = _StandInNvml()
    nvml = NvmlInventory("fc.gpu.ampere.1", stand_in).probe()  # type: ignore[arg-type]
    smi = parse_csv((DATA / "nvidia-smi-2xA10.csv").read_text(), "fc.gpu.ampere.1")
    assert nvml.source == "nvml" and nvml.driver_version == smi.driver_version
    assert [d.to_json() for d in nvml.devices] == [d.to_json() for d in smi.devices]
    assert stand_in.calls == ["init", "shutdown"]


def test_simulated_cards_say_so() -> None:
    report = inventory_for(gpu.parse_host_gpus({"simulated": [{"type": "fc.gpu.tesla.1", "count": 2}]}),
                           "lab-1").probe()
    assert report.simulated and report.source == "simulated"
    assert [(d.uuid, d.name) for d in report.devices] == [("SIM-GPU-lab-1-0", "SIMULATED fc.gpu.tesla.1"),
                                                          ("SIM-GPU-lab-1-1", "SIMULATED fc.gpu.tesla.1")]


def test_container_support_probe_says_what_to_install() -> None:
    # Docker's /info as this machine's dockerd 20.10 reports it: runc only, no CDI.
    info = {"ServerVersion": "20.10.24+dfsg1", "Runtimes": {"runc": {}, "io.containerd.runc.v2": {}},
            "CDISpecDirs": None}
    missing = probe(info, simulated=False, which=lambda _: None)
    assert missing.mode is None and "no GPU runtime" in missing.problem and "nvidia-ctk" in missing.problem
    assert probe(info, simulated=False, which=lambda n: "/usr/bin/" + n).mode == "nvidia"
    assert probe(info, simulated=True).mode == "simulated"


def test_placement_counts_cards_like_cpu_and_memory() -> None:
    from fc_provider._model.placement import Need, PlacementError, place

    key = "ssh-ed25519 AAAA"
    hosts = [{"name": "cpu-1", "address": "10.0.0.1", "host_public_key": key},
             {"name": "sim-1", "address": "10.0.0.2", "host_public_key": key,
              "gpus": {"simulated": [{"type": "fc.gpu.tesla.1", "count": 2}]}},
             {"name": "sim-2", "address": "10.0.0.3", "host_public_key": key,
              "gpus": {"simulated": [{"type": "fc.gpu.tesla.1", "count": 4}]}}]
    spec = {"cpu": 0.5, "memory_size": 1024, "min_instances": 2, "runtime": "custom-container",
            "gpu_config": {"gpu_type": "fc.gpu.tesla.1", "gpu_memory_size": 16384}}
    need = Need.of(spec)
    assert (need.gpu_type, need.gpu_cards) == ("fc.gpu.tesla.1", 2)
    selector = {"selector": {}, "replicas": 2}
    # Declared counts: both simulated hosts hold 2 cards; the CPU-only host never qualifies.
    assert place({"selector": {}, "replicas": 2}, hosts, [], need, lambda names: {n: None for n in names}) == [
        "sim-1", "sim-2"]
    # The agents' reports win: sim-2 has its 4 cards committed to other functions.
    reports = {"sim-1": {"gpus": {"types": {"fc.gpu.tesla.1": {"total": 2, "leased": 0, "committed": 0}}}},
               "sim-2": {"gpus": {"types": {"fc.gpu.tesla.1": {"total": 4, "leased": 4, "committed": 4}}}},
               "cpu-1": None}
    with pytest.raises(PlacementError, match="2 fc.gpu.tesla.1 card.*sim-2: .*GPU cards: fc.gpu.tesla.1 0"):
        place(selector, hosts, [], need, lambda names: {n: reports[n] for n in names})
    assert place({"selector": {}, "replicas": 1}, hosts, [], need,
                 lambda names: {n: reports[n] for n in names}) == ["sim-1"]


def test_fc_hosts_names_simulated_cards_and_inventory_errors() -> None:
    from fc_provider.cli._ops import gpu_summary

    simulated = {"source": "simulated", "simulated": True, "error": None, "support": {"problem": None},
                 "types": {"fc.gpu.tesla.1": {"total": 2, "leased": 1, "committed": 1, "reserved": 0}}}
    assert gpu_summary(simulated) == "2 fc.gpu.tesla.1 SIMULATED (1 leased, 0 in pools)"
    assert gpu_summary({"source": "nvml", "error": "NVML failed on a host that declares real GPUs: x"}) == \
        "nvml: NVML failed on a host that declares real GPUs: x"
    assert gpu_summary(None) == ""


def test_the_gpu_check_script_runs_without_a_gpu_or_docker_and_says_what_it_could_not_check() -> None:
    import os
    import subprocess

    script = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.sh"
    env = {**os.environ, "GPU_CHECK_TIMEOUT": "60", "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=90, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    for step in ("nvidia-smi inventory", "NVML inventory", "container sees exactly its card",
                 "freeze and thaw with GPU memory held"):
        assert f"NOT CHECKED  {step}:" in done.stdout, done.stdout
    assert "Traceback" not in done.stdout + done.stderr


# MIG ------------------------------------------------------------------------------------------------------------
HOPPER_MIG = {"gpu_config": {"gpu_type": "fc.gpu.hopper.1", "gpu_memory_size": 49152}, "cpu": 2, "memory_size": 4096}


def test_a_mig_profile_size_of_a_card_with_mig_passes_preview_and_needs_one_mig_device() -> None:
    assert failures(HOPPER_MIG) == []
    need = gpu.GpuNeed.of({**GPU_FN, **HOPPER_MIG})
    assert need == gpu.GpuNeed("fc.gpu.hopper.1", 1, 49152) and need.unit == "fc.gpu.hopper.1/mig-48gb"
    assert failures({"gpu_config": {"gpu_type": "fc.gpu.hopper.1", "gpu_memory_size": 98304}, "cpu": 16,
                     "memory_size": 98304}) == []  # a whole card stays a whole card (FC's choices)
    assert gpu.GpuNeed.of({**GPU_FN, "gpu_config": {"gpu_type": "fc.gpu.hopper.1", "gpu_memory_size": 98304}}) \
        == gpu.GpuNeed("fc.gpu.hopper.1", 1)
    assert list(gpu.MIG_PROFILES) == ["fc.gpu.hopper.1"]  # the only card of the catalog with MIG


@pytest.mark.parametrize(("change", "prop", "phrase"), [
    ({"gpu_config": {"gpu_type": "fc.gpu.hopper.1", "gpu_memory_size": 10240}}, "gpu_config",
     "or one MIG profile's memory: 12288 (1g.12gb), 24576 (1g.24gb), 24576 (2g.24gb), 49152 (3g.48gb), "
     "49152 (4g.48gb), 98304 (7g.96gb) MB; got 10240"),
    ({"gpu_config": {"gpu_type": "fc.gpu.ada.1", "gpu_memory_size": 24576}}, "gpu_config",
     "fc.gpu.ada.1 has no MIG (only fc.gpu.hopper.1 in the catalog do); got 24576"),
    ({**HOPPER_MIG, "cpu": 17}, "cpu", "at most 16"),
    ({**HOPPER_MIG, "memory_size": 131072}, "memory_size", "128 to 98304 MB"),
])
def test_a_size_neither_whole_cards_nor_a_mig_profile_is_refused_listing_the_valid_sizes(
        change: dict, prop: str, phrase: str) -> None:
    found = failures(change)
    assert any(p == prop and phrase in r for p, r in found), found


@pytest.mark.parametrize(("gpus", "phrase"), [
    ({"simulated": [{"type": "fc.gpu.ada.1", "mig_profiles": ["3g.48gb"]}]},
     "gpus.simulated[0].mig_profiles: fc.gpu.ada.1 has no MIG"),
    ({"simulated": [{"type": "fc.gpu.hopper.1", "mig_profiles": ["3g.40gb"]}]},
     "must be a list of fc.gpu.hopper.1 MIG profiles (1g.12gb"),
    ({"simulated": [{"type": "fc.gpu.hopper.1", "mig_profiles": ["4g.48gb", "4g.48gb"]}]},
     "take 8 compute slices; a card has 7"),
])
def test_a_simulated_mig_layout_must_fit_its_card(gpus: dict, phrase: str) -> None:
    with pytest.raises(gpu.GpuConfigError) as error:
        gpu.parse_host_gpus(gpus)
    assert phrase in str(error.value)


def test_simulated_mig_devices_say_so_and_their_parent_is_not_leasable() -> None:
    declared = gpu.parse_host_gpus({"simulated": [
        {"type": "fc.gpu.hopper.1", "count": 1, "mig_profiles": ["3g.48gb", "3g.48gb"]},
        {"type": "fc.gpu.hopper.1", "count": 1}]})
    assert declared.declared_cards() == {"fc.gpu.hopper.1/mig-48gb": 2, "fc.gpu.hopper.1": 1}
    report = inventory_for(declared, "lab-1").probe()
    assert [(d.uuid, d.name, d.unit, d.parent_uuid) for d in report.devices] == [
        ("SIM-GPU-lab-1-0", "SIMULATED fc.gpu.hopper.1", None, None),
        ("SIM-GPU-lab-1-0-MIG-0", "SIMULATED fc.gpu.hopper.1 MIG 3g.48gb", "fc.gpu.hopper.1/mig-48gb",
         "SIM-GPU-lab-1-0"),
        ("SIM-GPU-lab-1-0-MIG-1", "SIMULATED fc.gpu.hopper.1 MIG 3g.48gb", "fc.gpu.hopper.1/mig-48gb",
         "SIM-GPU-lab-1-0"),
        ("SIM-GPU-lab-1-1", "SIMULATED fc.gpu.hopper.1", "fc.gpu.hopper.1", None)]
    assert all(gpu.is_simulated_uuid(d.uuid) for d in report.devices)


MIG_UUIDS = ["MIG-4c1e7a52-9b3d-5f60-8e2a-1d7c9b0e3f41", "MIG-7d2f8b63-0c4e-5a71-9f3b-2e8d0c1f4a52",
             "MIG-8e3a9c74-1d5f-5b82-a04c-3f9e1d2a5b63"]


def test_nvidia_smi_list_adds_the_mig_devices_under_their_card() -> None:
    from runtime_agent.instances.gpu.smi import parse_list

    cards = parse_csv((DATA / "nvidia-smi-mig.csv").read_text(), "fc.gpu.hopper.1")
    report = parse_list((DATA / "nvidia-smi-L-mig.txt").read_text(), cards)
    parent = "GPU-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    assert [(d.uuid, d.unit, d.mig_profile, d.parent_uuid, d.memory_total_mib) for d in report.devices[2:]] == [
        (MIG_UUIDS[0], "fc.gpu.hopper.1/mig-40gb", "3g.40gb", parent, 40960),
        (MIG_UUIDS[1], "fc.gpu.hopper.1/mig-20gb", "2g.20gb", parent, 20480),
        (MIG_UUIDS[2], "fc.gpu.hopper.1/mig-10gb", "1g.10gb", parent, 10240)]
    assert [d.unit for d in report.devices[:2]] == [None, "fc.gpu.hopper.1"]  # the MIG parent: never whole
    with pytest.raises(GpuInventoryError, match="line 2 is a MIG device under no card in MIG mode"):
        parse_list("GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-1b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e)\n"
                   f"  MIG 1g.10gb     Device  0: (UUID: {MIG_UUIDS[0]})\n", cards)
    with pytest.raises(GpuInventoryError, match="line 1 is neither a GPU nor a MIG line"):
        parse_list("No devices were found\n", cards)


class _StandInMigNvml(_StandInNvml):
    """NVML's call surface for the same A100 layout: card 0 in MIG mode with three MIG devices in slots 0, 2, 5
    (empty slots raise NOT_FOUND, as NVML does), card 1 not."""

    def __init__(self) -> None:
        super().__init__()
        self.cards = [("GPU-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", 81920, 0, 0),
                      ("GPU-1b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e", 81920, 1, 0)]
        # slot -> (uuid, name as drivers report it, MiB total as a real 3g.40gb/2g.20gb/1g.10gb shows)
        self.migs = {0: (MIG_UUIDS[0], "NVIDIA A100-SXM4-80GB MIG 3g.40gb", 40192),
                     2: (MIG_UUIDS[1], "NVIDIA A100-SXM4-80GB MIG 2g.20gb", 19968),
                     5: (MIG_UUIDS[2], "NVIDIA A100-SXM4-80GB MIG 1g.10gb", 9856)}

    def nvmlDeviceGetMigMode(self, h: int) -> list[int]:
        return [1, 1] if h == 0 else [0, 0]

    def nvmlDeviceGetMaxMigDeviceCount(self, h: int) -> int:
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: int, slot: int) -> str:
        if slot not in self.migs:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return f"mig{slot}"

    def nvmlDeviceGetUUID(self, h: int | str) -> str:
        return self.migs[int(h[3:])][0] if isinstance(h, str) else super().nvmlDeviceGetUUID(h)

    def nvmlDeviceGetName(self, h: int | str) -> bytes:
        return self.migs[int(h[3:])][1].encode() if isinstance(h, str) else b"NVIDIA A100-SXM4-80GB"

    def nvmlDeviceGetMemoryInfo(self, h: int | str) -> SimpleNamespace:
        if isinstance(h, str):
            return SimpleNamespace(total=self.migs[int(h[3:])][2] * 1024 * 1024, used=0)
        return super().nvmlDeviceGetMemoryInfo(h)


def test_nvml_lists_mig_devices_read_only_and_agrees_with_nvidia_smi_on_them() -> None:
    stand_in = _StandInMigNvml()
    report = NvmlInventory("fc.gpu.hopper.1", stand_in).probe()  # type: ignore[arg-type]
    from runtime_agent.instances.gpu.smi import parse_list

    smi = parse_list((DATA / "nvidia-smi-L-mig.txt").read_text(),
                     parse_csv((DATA / "nvidia-smi-mig.csv").read_text(), "fc.gpu.hopper.1"))
    key = [(d.uuid, d.unit, d.mig_profile, d.parent_uuid) for d in report.devices]
    assert key == [(d.uuid, d.unit, d.mig_profile, d.parent_uuid) for d in smi.devices[:1]] + [
        (d.uuid, d.unit, d.mig_profile, d.parent_uuid) for d in smi.devices[2:]] + [
        (smi.devices[1].uuid, "fc.gpu.hopper.1", None, None)]
    assert stand_in.calls == ["init", "shutdown"]  # nothing but reads in between (no MIG changes exist here)


def test_placement_counts_mig_devices_like_cards() -> None:
    from fc_provider._model.placement import Need, PlacementError, place

    key = "ssh-ed25519 AAAA"
    hosts = [{"name": "sim-mig", "address": "10.0.0.2", "host_public_key": key, "gpus": {"simulated": [
        {"type": "fc.gpu.hopper.1", "count": 1, "mig_profiles": ["3g.48gb", "3g.48gb"]}]}}]
    spec = {**GPU_FN, **HOPPER_MIG, "min_instances": 2}
    need = Need.of(spec)
    assert (need.gpu_type, need.gpu_cards) == ("fc.gpu.hopper.1/mig-48gb", 2)
    assert place({"selector": {}, "replicas": 1}, hosts, [], need, lambda names: {n: None for n in names}) == [
        "sim-mig"]
    with pytest.raises(PlacementError, match="3 fc.gpu.hopper.1/mig-48gb card"):
        place({"selector": {}, "replicas": 1}, hosts, [], Need.of({**spec, "min_instances": 3}),
              lambda names: {n: None for n in names})
    whole = Need.of({**GPU_FN, "gpu_config": {"gpu_type": "fc.gpu.hopper.1", "gpu_memory_size": 98304}})
    with pytest.raises(PlacementError):  # the card in MIG mode is never a whole card
        place({"selector": {}, "replicas": 1}, hosts, [], whole, lambda names: {n: None for n in names})
