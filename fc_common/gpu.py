"""FC's GPU card catalog, as data, and the rule a function's ``gpu_config`` must follow. Both sides read it: the
provider validates at preview and places by cards, the agent admits and leases by cards.

The catalog follows FC's full-card spec table (billing FAQ "resource usage items ... GPU-accelerated instance"): per
card type its memory, the vCPU and memory choices FC allows for one card, and the instance modes. A function takes
whole cards only: Docker cannot cap the GPU memory a container uses (NVIDIA/nvidia-docker#940), so a slice of a card
would be a promise nothing enforces. ``gpu_memory_size`` is therefore the memory of one or more whole cards, and the
vCPU/memory choices are multiplied by the number of cards, as FC multiplies them.

Simulated cards (the lab's, declared on a Fleet host) carry the same types; their UUIDs start with ``SIM-GPU-``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

SIMULATED_UUID_PREFIX = "SIM-GPU-"
MAX_CARDS_PER_INSTANCE = 8
WHOLE_CARDS_ONLY = ("whole cards only: Docker cannot cap the GPU memory a container uses, so a part of a card "
                    "cannot be enforced")


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
ALIASES = {"g1": "fc.gpu.tesla.1"}  # FC's SDK: g1 is "same as fc.gpu.tesla.1"


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
    """What one instance of a GPU function takes: ``cards`` whole cards of ``gpu_type``."""

    gpu_type: str
    cards: int

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> "GpuNeed | None":
        config = spec.get("gpu_config")
        if not config:
            return None
        card = card_type(str(config["gpu_type"]))
        return cls(card.name, int(config["gpu_memory_size"]) // card.memory_mb)


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
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0 or size % card.memory_mb:
        raise GpuConfigError(f"gpu_config.gpu_memory_size must be a whole number of {card.name} cards, a multiple "
                             f"of {card.memory_mb} MB ({card.model_hint}); got {size!r}: {WHOLE_CARDS_ONLY}")
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


def is_simulated_uuid(uuid: str) -> bool:
    return uuid.startswith(SIMULATED_UUID_PREFIX)


def simulated_uuid(host: str, index: int) -> str:
    return f"{SIMULATED_UUID_PREFIX}{host}-{index}"


@dataclass(frozen=True)
class HostGpus:
    """A host's GPU declaration (Fleet ``HostArgs.gpus``, agent config ``gpus``). Real: every card the host's NVML
    reports, all of ``gpu_type``. Simulated: ``count`` declared cards per type, no hardware behind them."""

    simulated: tuple[tuple[str, int], ...] = ()  # (gpu_type, count)
    gpu_type: str | None = None  # real cards
    source: str = "nvml"  # real cards: "nvml" (nvidia-ml-py) or "nvidia-smi"

    @property
    def is_simulated(self) -> bool:
        return bool(self.simulated)

    def declared_cards(self) -> dict[str, int | None]:
        """Cards per type as declared; None: real cards, counted by the host's inventory."""
        if self.is_simulated:
            totals: dict[str, int | None] = {}
            for gpu_type, count in self.simulated:
                totals[gpu_type] = int(totals.get(gpu_type) or 0) + count
            return totals
        return {self.gpu_type: None} if self.gpu_type else {}


SOURCES = ("nvml", "nvidia-smi")


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
            if not isinstance(entry, Mapping) or set(entry) - {"type", "count"}:
                raise GpuConfigError(f"{where}.simulated[{i}] must be {{'type': 'fc.gpu...', 'count': N}}")
            try:
                card = card_type(str(entry.get("type")))
            except GpuConfigError as exc:
                raise GpuConfigError(f"{where}.simulated[{i}].type: {exc}") from None
            count = entry.get("count", 1)
            if not isinstance(count, (int, float)) or count != int(count) or not 1 <= int(count) <= 64:
                raise GpuConfigError(f"{where}.simulated[{i}].count must be an integer from 1 to 64, got {count!r}")
            entries.append((card.name, int(count)))
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
