"""FC's GPU card catalog, as data, and the rule a function's ``gpu_config`` must follow. Both sides read it: the
provider validates at preview and places by cards, the agent admits and leases by cards.

The catalog follows FC's full-card spec table (billing FAQ "resource usage items ... GPU-accelerated instance"): per
card type its memory, the vCPU and memory choices FC allows for one card, and the instance modes. A function takes
whole cards only: Docker cannot cap the GPU memory a container uses (NVIDIA/nvidia-docker#940), so a slice of a card
would be a promise nothing enforces. ``gpu_memory_size`` is therefore the memory of one or more whole cards, and the
vCPU/memory choices are multiplied by the number of cards, as FC multiplies them.

The one exception is MIG (Multi-Instance GPU): a card in MIG mode is split by the hardware into GPU instances whose
memory the card itself enforces, so a MIG device is a unit Docker can hand out by its UUID (``MIG-...``) with a real
limit. ``gpu_memory_size`` may therefore also be one MIG profile's memory, for the card types whose hardware has MIG
(``MIG_PROFILES``: NVIDIA's published profiles). Such an instance takes one MIG device of exactly that memory, which a
host must report (NVML, nvidia-smi -L, or a simulated layout); a card in MIG mode is never leased whole. FC itself
sells no MIG sizes, so a MIG instance's cpu and memory_size are our choice: any value up to one card's largest.

Simulated cards (the lab's, declared on a Fleet host) carry the same types; their UUIDs start with ``SIM-GPU-``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

SIMULATED_UUID_PREFIX = "SIM-GPU-"
MAX_CARDS_PER_INSTANCE = 8
WHOLE_CARDS_ONLY = ("whole cards or MIG devices only: Docker cannot cap the GPU memory a container uses, so any "
                    "other part of a card cannot be enforced")


@dataclass(frozen=True)
class CardType:
    name: str
    memory_mb: int  # the card's memory as FC sells it (gpuMemorySize of one full card)
    # FC's choices for one card. A range is (low, high, step); a tuple of values is a set of choices.
    vcpu: tuple[float, ...]
    memory: tuple[int, ...]
    vcpu_is_range: bool = False
    memory_is_range: bool = False
    modes: tuple[str, ...] = ("Elastic",)
    model_hint: str = ""  # what FC's docs say the card is, for messages only

    def vcpu_allowed(self, cpu: float, cards: int) -> bool:
        if self.vcpu_is_range:
            low, high, step = self.vcpu
            return low * cards - 1e-9 <= cpu <= high * cards + 1e-9 and abs(round(cpu / step) * step - cpu) < 1e-9
        return any(abs(cpu - v * cards) < 1e-9 for v in self.vcpu)

    def memory_allowed(self, memory_mb: int, cards: int) -> bool:
        if self.memory_is_range:
            low, high, step = self.memory
            return low <= memory_mb <= high * cards and memory_mb % step == 0
        return any(memory_mb == m * cards for m in self.memory)

    def describe_vcpu(self, cards: int) -> str:
        if self.vcpu_is_range:
            low, high, step = self.vcpu
            return f"{low:g} to {high * cards:g} in steps of {step:g}"
        return ", ".join(f"{v * cards:g}" for v in self.vcpu)

    def describe_memory(self, cards: int) -> str:
        if self.memory_is_range:
            low, high, step = self.memory
            return f"{low} to {high * cards} MB in steps of {step}"
        return ", ".join(str(m * cards) for m in self.memory) + " MB"


def _sliced_era(name: str, gb: int, hint: str) -> CardType:
    """The T4/A10 generation: vCPU 0.05 .. GB/2 (step 0.05), memory 128 .. GB x 2048 MB (step 64) per card."""
    return CardType(name, gb * 1024, (0.05, gb / 2, 0.05), (128, gb * 2048, 64), vcpu_is_range=True,
                    memory_is_range=True, model_hint=hint)


RESIDENT = ("Elastic", "Resident")
CATALOG: dict[str, CardType] = {c.name: c for c in (
    _sliced_era("fc.gpu.tesla.1", 16, "Tesla T4, 16 GB"),
    _sliced_era("fc.gpu.ampere.1", 24, "Ampere A10, 24 GB"),
    CardType("fc.gpu.ada.1", 49152, (4, 8, 16), (32768, 65536, 98304), modes=RESIDENT, model_hint="Ada, 48 GB"),
    CardType("fc.gpu.ada.2", 24576, (8, 16), (32768, 65536), modes=RESIDENT, model_hint="Ada, 24 GB"),
    CardType("fc.gpu.ada.3", 49152, (8, 16), (65536, 98304), modes=RESIDENT, model_hint="Ada, 48 GB"),
    CardType("fc.gpu.hopper.1", 98304, (16,), (98304,), modes=RESIDENT, model_hint="Hopper, 96 GB"),
    CardType("fc.gpu.xpu.1", 98304, (16,), (98304,), modes=RESIDENT, model_hint="XPU, 96 GB"),
)}
ALIASES = {"g1": "fc.gpu.tesla.1"}

# MIG profiles per card type, from NVIDIA's MIG user guide ("Supported MIG Profiles"): only Ampere A100/A30 and Hopper
# have MIG. In this catalog only fc.gpu.hopper.1 (Hopper, 96 GB: the H20 96 GB table) does; the T4, the A10 (FC's
# "ampere.1" is an A10, not an A100), the Ada cards and the XPU have no MIG at all.
MIG_PROFILES: dict[str, tuple[str, ...]] = {
    "fc.gpu.hopper.1": ("1g.12gb", "1g.24gb", "2g.24gb", "3g.48gb", "4g.48gb", "7g.96gb"),
}
_PROFILE = re.compile(r"(\d|\?)g\.(\d+)gb\b")  # "?": a size read from memory, slices unknown


def profile_memory_mb(profile: str) -> int:
    """A MIG profile's memory as its name says it ("3g.48gb": 48 GB = 49152 MB): the size a function asks for."""
    match = _PROFILE.search(profile)
    if match is None:
        raise GpuConfigError(f"{profile!r} is not a MIG profile name (like 3g.48gb)")
    return int(match.group(2)) * 1024


def profile_in(text: str) -> str | None:
    """The MIG profile named in a device name ("NVIDIA H20 MIG 3g.48gb"), or None."""
    match = _PROFILE.search(text)
    return match.group(0) if match else None


def mig_sizes(gpu_type: str) -> list[int]:
    """The gpu_memory_size values MIG profiles of this card type give (distinct, ascending)."""
    return sorted({profile_memory_mb(p) for p in MIG_PROFILES.get(gpu_type, ())})


def unit_key(gpu_type: str, mig_memory_mb: int | None = None) -> str:
    """What placement and the ledger count: whole cards by type, MIG devices by type and memory."""
    return gpu_type if mig_memory_mb is None else f"{gpu_type}/mig-{mig_memory_mb // 1024}gb"  # FC's SDK: g1 is "same as fc.gpu.tesla.1"


class GpuConfigError(ValueError):
    """A gpu_config FC would refuse or this platform cannot enforce; the message names the field and the rule."""


def card_type(name: str) -> CardType:
    resolved = ALIASES.get(name, name)
    if resolved not in CATALOG:
        raise GpuConfigError(f"gpu_config.gpu_type {name!r} is not a known card type (one of "
                             f"{', '.join(CATALOG)})")
    return CATALOG[resolved]


@dataclass(frozen=True)
class GpuNeed:
    """What one instance of a GPU function takes: ``cards`` whole cards of ``gpu_type``, or (``mig_memory_mb``
    set) one MIG device of that card type with exactly that memory."""

    gpu_type: str
    cards: int
    mig_memory_mb: int | None = None

    @property
    def unit(self) -> str:
        return unit_key(self.gpu_type, self.mig_memory_mb)

    def describe(self) -> str:
        if self.mig_memory_mb is not None:
            return f"one {self.gpu_type} MIG device of {self.mig_memory_mb // 1024} GB"
        return f"{self.cards} {self.gpu_type} card(s)"

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> "GpuNeed | None":
        config = spec.get("gpu_config")
        if not config:
            return None
        card = card_type(str(config["gpu_type"]))
        size = int(config["gpu_memory_size"])
        if size % card.memory_mb:
            return cls(card.name, 1, size)
        return cls(card.name, size // card.memory_mb)


def validate(spec: Mapping[str, Any]) -> None:
    """Raises GpuConfigError unless ``spec['gpu_config']`` is whole cards of a known type on a custom-container
    function whose cpu and memory_size are among FC's choices for those cards."""
    config = spec.get("gpu_config")
    if not config:
        return
    if spec.get("runtime") != "custom-container":
        raise GpuConfigError(f"gpu_config is only for runtime custom-container (FC runs GPU functions from "
                             f"container images only); runtime is {spec.get('runtime')!r}")
    card = card_type(str(config.get("gpu_type")))
    size = config.get("gpu_memory_size")
    whole = isinstance(size, int) and not isinstance(size, bool) and size > 0 and size % card.memory_mb == 0
    if not whole and size in mig_sizes(card.name):
        return _validate_mig(spec, card, int(size))
    if not whole:
        raise GpuConfigError(f"gpu_config.gpu_memory_size must be a whole number of {card.name} cards, a multiple "
                             f"of {card.memory_mb} MB ({card.model_hint}){_mig_choices(card)}; got {size!r}: "
                             f"{WHOLE_CARDS_ONLY}")
    cards = size // card.memory_mb
    if cards > MAX_CARDS_PER_INSTANCE:
        raise GpuConfigError(f"gpu_config.gpu_memory_size asks for {cards} cards; at most "
                             f"{MAX_CARDS_PER_INSTANCE} per instance")
    cpu = spec.get("cpu")
    if cpu is None:
        raise GpuConfigError(f"cpu is required with gpu_config: one of {card.describe_vcpu(cards)} for "
                             f"{cards} {card.name} card(s)")
    if not card.vcpu_allowed(float(cpu), cards):
        raise GpuConfigError(f"cpu {cpu:g} is not offered with {cards} {card.name} card(s): one of "
                             f"{card.describe_vcpu(cards)}")
    memory = int(spec.get("memory_size") or 128)
    if not card.memory_allowed(memory, cards):
        raise GpuConfigError(f"memory_size {memory} is not offered with {cards} {card.name} card(s): "
                             f"{card.describe_memory(cards)}")


def _mig_choices(card: CardType) -> str:
    profiles = MIG_PROFILES.get(card.name)
    if not profiles:
        return f", and {card.name} has no MIG (only {', '.join(MIG_PROFILES)} in the catalog do)"
    return (", or one MIG profile's memory: " + ", ".join(f"{profile_memory_mb(p)} ({p})" for p in profiles)
            + " MB")


def _validate_mig(spec: Mapping[str, Any], card: CardType, size: int) -> None:
    """A MIG-sized function: FC has no choices for it, so cpu and memory_size may be any value up to one card's
    largest (the host's capacity and the device's own memory limit do the rest)."""
    top_cpu, top_memory = (card.vcpu[1] if card.vcpu_is_range else max(card.vcpu),
                           card.memory[1] if card.memory_is_range else max(card.memory))
    cpu = spec.get("cpu")
    if cpu is None or not 0 < float(cpu) <= top_cpu:
        raise GpuConfigError(f"cpu is required with a MIG-sized gpu_config ({size} MB of {card.name}): more than 0, "
                             f"at most {top_cpu:g}; got {cpu!r}")
    memory = int(spec.get("memory_size") or 128)
    if not 128 <= memory <= top_memory:
        raise GpuConfigError(f"memory_size {memory} is not offered with a MIG device of {card.name}: 128 to "
                             f"{top_memory} MB")


def is_simulated_uuid(uuid: str) -> bool:
    return uuid.startswith(SIMULATED_UUID_PREFIX)


def simulated_uuid(host: str, index: int) -> str:
    return f"{SIMULATED_UUID_PREFIX}{host}-{index}"


@dataclass(frozen=True)
class HostGpus:
    """A host's GPU declaration (Fleet ``HostArgs.gpus``, agent config ``gpus``). Real: every card the host's NVML
    reports, all of ``gpu_type``. Simulated: ``count`` declared cards per type, no hardware behind them."""

    # (gpu_type, count, MIG profiles each of these cards is split into; () for cards not in MIG mode)
    simulated: tuple[tuple[str, int, tuple[str, ...]], ...] = ()
    gpu_type: str | None = None  # real cards
    source: str = "nvml"  # real cards: "nvml" (nvidia-ml-py) or "nvidia-smi"

    @property
    def is_simulated(self) -> bool:
        return bool(self.simulated)

    def declared_cards(self) -> dict[str, int | None]:
        """Leasable units per ``unit_key`` as declared (whole cards per type; MIG devices per type and size, their
        parent cards not at all); None: real cards, counted by the host's inventory."""
        if self.is_simulated:
            totals: dict[str, int | None] = {}
            for gpu_type, count, profiles in self.simulated:
                for key in [unit_key(gpu_type, profile_memory_mb(p)) for p in profiles] or [gpu_type]:
                    totals[key] = int(totals.get(key) or 0) + count
            return totals
        return {self.gpu_type: None} if self.gpu_type else {}


SOURCES = ("nvml", "nvidia-smi")


def _simulated_profiles(card: CardType, profiles: Any, where: str) -> tuple[str, ...]:
    """A simulated card's MIG layout: profiles of its type whose compute slices fit the card's seven."""
    if not profiles:
        return ()
    allowed = MIG_PROFILES.get(card.name)
    if not allowed:
        raise GpuConfigError(f"{where}.mig_profiles: {card.name} has no MIG (only {', '.join(MIG_PROFILES)} in the "
                             "catalog do)")
    if not isinstance(profiles, (list, tuple)) or any(p not in allowed for p in profiles):
        raise GpuConfigError(f"{where}.mig_profiles must be a list of {card.name} MIG profiles "
                             f"({', '.join(allowed)}), got {profiles!r}")
    slices = sum(int(p.split("g.")[0]) for p in profiles)
    if slices > 7:
        raise GpuConfigError(f"{where}.mig_profiles take {slices} compute slices; a card has 7")
    return tuple(profiles)


def parse_host_gpus(value: Any, where: str = "gpus") -> HostGpus | None:
    """The declaration, or GpuConfigError naming ``where`` and the rule. A host never mixes real and simulated."""
    if value in (None, {}):
        return None
    if not isinstance(value, Mapping):
        raise GpuConfigError(f"{where} must be {{'simulated': [{{'type': ..., 'count': N}}]}} or {{'type': ...}}")
    unknown = sorted(set(value) - {"simulated", "type", "source"})
    if unknown:
        raise GpuConfigError(f"{where}: unknown keys {unknown} (simulated, type, source)")
    if value.get("simulated") and (value.get("type") or value.get("source")):
        raise GpuConfigError(f"{where}: a host has either simulated cards or real ones (type/source), never both")
    if value.get("simulated"):
        entries = []
        for i, entry in enumerate(value["simulated"]):
            if not isinstance(entry, Mapping) or set(entry) - {"type", "count", "mig_profiles"}:
                raise GpuConfigError(f"{where}.simulated[{i}] must be {{'type': 'fc.gpu...', 'count': N}} and "
                                     "optionally 'mig_profiles': [...]")
            try:
                card = card_type(str(entry.get("type")))
            except GpuConfigError as exc:
                raise GpuConfigError(f"{where}.simulated[{i}].type: {exc}") from None
            count = entry.get("count", 1)
            if not isinstance(count, (int, float)) or count != int(count) or not 1 <= int(count) <= 64:
                raise GpuConfigError(f"{where}.simulated[{i}].count must be an integer from 1 to 64, got {count!r}")
            entries.append((card.name, int(count),
                            _simulated_profiles(card, entry.get("mig_profiles"), f"{where}.simulated[{i}]")))
        return HostGpus(simulated=tuple(entries))
    if not value.get("type"):
        raise GpuConfigError(f"{where}.type is required for real cards (the fc.gpu.* type of this host's cards)")
    try:
        card = card_type(str(value["type"]))
    except GpuConfigError as exc:
        raise GpuConfigError(f"{where}.type: {exc}") from None
    source = value.get("source") or "nvml"
    if source not in SOURCES:
        raise GpuConfigError(f"{where}.source must be one of {', '.join(SOURCES)}, got {source!r}")
    return HostGpus(gpu_type=card.name, source=source)
