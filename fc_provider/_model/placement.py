"""Where a function runs: every host, named hosts, or ``replicas`` hosts picked by a label selector.

Placement is stable: hosts that already run the function and still qualify keep it, so an `up` that changes
nothing else never moves a function. New hosts are picked by free capacity (the agent's ``GET /v1/info``
``capacity`` minus ``committed`` when it reports them, else the capacity declared on the fleet's host, else
unlimited), most free memory first, then name, so the choice is repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

from fc_common.gpu import GpuNeed, parse_host_gpus
from fc_common.sizing import Size

from .._errors import FcProviderError


class PlacementError(FcProviderError):
    """No placement satisfies the function's rule; the message names the rule and the hosts considered."""


@dataclass(frozen=True)
class Need:
    """What one function reserves on a host: max(min_instances, 1) instances of its size."""

    cpu: float
    memory_mb: int
    # GPU functions: whole cards of this type, or MIG devices of this type and size (fc_common.gpu.unit_key),
    # counted like cpu and memory
    gpu_type: Optional[str] = None
    gpu_cards: int = 0

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> "Need":
        size = Size.of(spec)  # the agent's own rule, so placement and the host's reservations agree
        count = max(int(spec.get("min_instances") or 0), 1)
        gpus = GpuNeed.of(spec)
        return cls(round(size.cpu * count, 4), size.memory_mb * count, gpus.unit if gpus else None,
                   gpus.cards * count if gpus else 0)


@dataclass(frozen=True)
class Free:
    cpu: Optional[float]  # None: unlimited (nothing declared or reported)
    memory_mb: Optional[int]
    # GPU type -> free cards (None: real cards the agent has not reported yet; it admits or refuses them).
    gpus: Optional[Mapping[str, Optional[int]]] = None

    def fits(self, need: Need) -> bool:
        return ((self.cpu is None or self.cpu + 1e-9 >= need.cpu)
                and (self.memory_mb is None or self.memory_mb >= need.memory_mb)
                and (need.gpu_type is None or self._cards(need.gpu_type, need.gpu_cards)))

    def _cards(self, gpu_type: str, wanted: int) -> bool:
        if not self.gpus or gpu_type not in self.gpus:
            return False
        free = self.gpus[gpu_type]
        return free is None or free >= wanted

    def describe(self) -> str:
        cpu = "unlimited" if self.cpu is None else f"{self.cpu:g}"
        mem = "unlimited" if self.memory_mb is None else f"{self.memory_mb}"
        cards = ", ".join(f"{t} {'unreported' if n is None else n}" for t, n in (self.gpus or {}).items())
        return f"free cpu {cpu}, memory {mem} MB" + (f", GPU cards: {cards}" if cards else "")


def free_capacity(host: Mapping[str, Any], info: Optional[Mapping[str, Any]]) -> Free:
    """Free capacity from the agent's report when it has one, else from the host's declared capacity."""
    reported = (info or {}).get("capacity")
    committed = (info or {}).get("committed") or {}
    declared = host.get("capacity") or {}
    capacity = reported if isinstance(reported, Mapping) else declared

    def left(key: str) -> Optional[float]:
        total = capacity.get(key)
        return None if total is None else float(total) - float(committed.get(key) or 0)

    cpu, memory = left("cpu"), left("memory_mb")
    return Free(None if cpu is None else round(cpu, 2), None if memory is None else int(memory),
                free_cards(host, info))


def free_cards(host: Mapping[str, Any], info: Optional[Mapping[str, Any]]) -> dict[str, Optional[int]]:
    """Cards per type not committed to functions: the agent's report (total - committed), else the declaration
    (simulated counts; real cards unknown until the agent has counted them)."""
    reported = ((info or {}).get("gpus") or {}).get("types")
    if isinstance(reported, Mapping):
        return {t: int(c.get("total", 0)) - int(c.get("committed", 0)) for t, c in reported.items()}
    declared = parse_host_gpus(host.get("gpus"))
    return dict(declared.declared_cards()) if declared else {}


def matching(placement: Any, hosts: Sequence[Mapping[str, Any]]) -> list[str]:
    """Hosts that may run the function, ignoring capacity."""
    names = [h["name"] for h in hosts]
    if placement is None:
        return names
    if isinstance(placement, list):
        unknown = [n for n in placement if n not in names]
        if unknown:
            raise PlacementError(f"placement: host(s) {', '.join(unknown)} are not part of the fleet "
                                 f"({', '.join(names)})")
        return list(placement)
    selector = placement["selector"]
    return [h["name"] for h in hosts if all((h.get("labels") or {}).get(k) == v for k, v in selector.items())]


def replicas(placement: Any, candidates: Sequence[str]) -> int:
    return int(placement.get("replicas", 1)) if isinstance(placement, dict) else len(candidates)


def planned_without_capacity(placement: Any, hosts: Sequence[Mapping[str, Any]],
                             current: Sequence[str]) -> Optional[list[str]]:
    """The placement when it does not depend on capacity (preview and diff never ask the hosts), else None: a
    selector that must pick new hosts."""
    candidates = matching(placement, hosts)
    if not isinstance(placement, dict):
        return sorted(candidates)
    kept = sorted(n for n in current if n in candidates)
    wanted = replicas(placement, candidates)
    if len(kept) >= wanted:
        return kept[:wanted]
    return None


def candidates_for(placement: Any, hosts: Sequence[Mapping[str, Any]]) -> tuple[list[str], int]:
    """The hosts that qualify by name or labels, and how many are wanted; PlacementError when too few qualify
    (known without asking any host, so `check` reports it at preview)."""
    candidates = matching(placement, hosts)
    wanted = replicas(placement, candidates)
    if len(candidates) < wanted or not candidates:
        raise PlacementError(f"placement: no host fits {_rule(placement, wanted)}: {len(candidates)} host(s) match "
                             f"({', '.join(candidates) or 'none'}) of {', '.join(h['name'] for h in hosts)}")
    return candidates, wanted


def place(placement: Any, hosts: Sequence[Mapping[str, Any]], current: Sequence[str], need: Need,
          host_info: Callable[[list[str]], Mapping[str, Optional[Mapping[str, Any]]]]) -> list[str]:
    """The hosts to run on. ``current``: where the function runs now (kept while it qualifies). ``host_info``
    fetches ``GET /v1/info`` from the named hosts (None for a host that does not answer); it is called only when
    new hosts must be chosen."""
    candidates, wanted = candidates_for(placement, hosts)
    rule = _rule(placement, wanted)
    kept = sorted(n for n in current if n in candidates)[:wanted]
    fresh = [n for n in candidates if n not in kept]
    if len(kept) == wanted and (isinstance(placement, dict) or not fresh):
        return kept
    by_name = {h["name"]: h for h in hosts}
    infos = host_info(fresh) if fresh else {}
    free = {n: free_capacity(by_name[n], infos.get(n)) for n in fresh}
    fitting = [n for n in fresh if free[n].fits(need)]
    missing = (wanted - len(kept)) if isinstance(placement, dict) else len(fresh)
    if len(fitting) < missing:
        details = "; ".join(f"{n}: {free[n].describe()}" for n in fresh if n not in fitting)
        cards = f" and {need.gpu_cards} {need.gpu_type} card(s)" if need.gpu_type else ""
        raise PlacementError(f"placement: no host fits {rule} with capacity for cpu {need.cpu:g} and memory "
                             f"{need.memory_mb} MB{cards} ({len(fitting)} of {missing} needed host(s) fit; "
                             f"{details})")

    def roominess(name: str) -> tuple[float, float, str]:
        f = free[name]
        return (-(f.memory_mb if f.memory_mb is not None else float("inf")),
                -(f.cpu if f.cpu is not None else float("inf")), name)

    return sorted(kept + sorted(fitting, key=roominess)[:missing])


def _rule(placement: Any, wanted: int) -> str:
    if placement is None:
        return "placement on every host"
    if isinstance(placement, list):
        return f"placement on {', '.join(placement)}"
    labels = ", ".join(f"{k}={v}" for k, v in placement["selector"].items())
    return f"selector {{{labels}}} with replicas={wanted}"
