"""The size of one instance: the one rule the agent reserves by and the provider places by. No imports beyond
the standard library, so the provider can use it without loading the agent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Size:
    """What one instance reserves on its host: cpu as set, else half a vCPU per GB (at least 0.05); memory_size."""

    cpu: float
    memory_mb: int

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> "Size":
        memory = int(spec.get("memory_size") or 128)
        return cls(float(spec.get("cpu") or max(0.05, round(memory / 2048, 4))), memory)
