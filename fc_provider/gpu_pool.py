"""The ``GpuPool`` resource: whole GPU cards of one type reserved on the fleet (FC's resident pool, bought in its
console; declared here) for the functions bound to it.

Bound functions keep (pool cards on a host / cards per instance) resident instances started on each of the pool's
hosts, so their maximum concurrency is instances x instance_concurrency and requests beyond it are throttled as FC
throttles; ``mix_mode`` lets them add elastic instances on cards no pool holds. Unbound functions never take a
pool's card. Place bound functions on the pool's hosts: ``placement=pool.host_names``."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from fc_common import gpu

from ._errors import FcProviderError, brief_errors
from ._model.validation import has_unknown
from ._remote import fleetops as ops
from ._remote.ssh import HostSpec
from .fleet import Fleet

INPUTS = ("gpu_type", "count", "selector", "functions", "mix_mode")


class GpuPoolArgs:
    def __init__(self, *, gpu_type: str, count: int, selector: Optional[Mapping[str, str]] = None,
                 functions: Optional[Sequence[pulumi.Input[str]]] = None, mix_mode: bool = False) -> None:
        """
        :param gpu_type: The card type, e.g. "fc.gpu.ada.1" (fc_common/gpu.py's catalog). Required.
        :param count: Whole cards to reserve across the matching hosts, 1-1000; more than they have fails at
               preview (declared simulated cards) or at deploy (real cards, as the agents count them). Required.
        :param selector: Labels a host must carry to give cards, e.g. {"gpu": "a10"}. Default: every host with
               cards of the type.
        :param functions: Names of the functions bound to the pool (e.g. ``fn.function_name``). Default none.
        :param mix_mode: FC's enableMixMode: bound functions may add elastic instances on unreserved cards beyond
               the pool. Default False (beyond the pool: ResourceThrottled).
        """
        self.gpu_type, self.count, self.selector = gpu_type, count, dict(selector or {})
        self.functions, self.mix_mode = list(functions or []), mix_mode


def _matching(props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    selector = props.get("selector") or {}
    hosts = (props.get("connection") or {}).get("hosts") or []
    return [h for h in hosts if h.get("gpus") and all((h.get("labels") or {}).get(k) == v
                                                      for k, v in selector.items())]


class GpuPoolProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        try:
            news["gpu_type"] = gpu.card_type(str(news.get("gpu_type"))).name
        except gpu.GpuConfigError as exc:
            failures.append(CheckFailure("gpu_type", str(exc).replace("gpu_config.gpu_type", "gpu_type")))
        count = news.get("count")
        if not isinstance(count, (int, float)) or count != int(count) or not 1 <= count <= 1000:
            failures.append(CheckFailure("count", f"count must be an integer from 1 to 1000, got {count!r}"))
        connection = news.get("connection")
        if not failures and isinstance(connection, dict) and not has_unknown(connection):
            declared = [gpu.parse_host_gpus(h["gpus"]) for h in _matching(news)]
            if all(d is not None and d.is_simulated for d in declared):  # real cards are counted at deploy
                have = sum(int(d.declared_cards().get(news["gpu_type"]) or 0) for d in declared if d)
                if have < int(count):
                    failures.append(CheckFailure("count", f"count: the pool asks for {int(count)} "
                                                 f"{news['gpu_type']} card(s) but the matching hosts declare {have}"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in INPUTS if olds.get(k) != news.get(k)]
        replaces = [k for k in ("gpu_type", "pool_name") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed or replaces), replaces=replaces, stables=[],
                          delete_before_replace=bool(replaces))

    def _apply(self, props: dict[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        conn = ops.FleetConnection.from_dict(props["connection"])
        name, gpu_type, wanted = props["pool_name"], props["gpu_type"], int(props["count"])
        hosts = sorted(_matching(props), key=lambda h: h["name"])
        if not hosts:
            raise FcProviderError(f"GPU pool {name}: no host of the fleet declares GPUs matching selector "
                                  f"{props.get('selector') or {}}")

        def room(host: HostSpec) -> int:
            with ops.agent_session(conn, host) as (_ssh, agent):
                types = ((agent.raw("GET", "/v1/info")[1] or {}).get("gpus") or {}).get("types") or {}
            t = types.get(gpu_type) or {}
            mine = len((current.get(host.name) or {}).get("cards") or [])
            return int(t.get("total", 0)) - int(t.get("reserved", 0)) + mine

        rooms = ops.on_hosts(f"GPU pool {name}", [conn.host(h["name"]) for h in hosts], room)
        plan, left = {}, wanted
        for host in hosts:
            take = min(left, rooms[host["name"]])
            if take > 0:
                plan[host["name"]] = take
                left -= take
        if left > 0:
            found = ", ".join(f"{h}: {n}" for h, n in sorted(rooms.items()))
            raise FcProviderError(f"GPU pool {name} asks for {wanted} {gpu_type} card(s); the matching hosts have "
                                  f"{wanted - left} not held by other pools ({found})")
        body = {"gpu_type": gpu_type, "functions": list(props.get("functions") or []),
                "mix_mode": bool(props.get("mix_mode"))}

        def put(host: HostSpec) -> dict[str, Any]:
            with ops.agent_session(conn, host) as (_ssh, agent):
                return agent.put_gpu_pool(name, {**body, "cards": plan[host.name]})

        with ops.fleet_lock(conn, [conn.host(h) for h in plan], f"GPU pool {name}"):
            seen = ops.on_hosts(f"GPU pool {name}", [conn.host(h) for h in plan], put)
        gone = sorted(set(current) - set(plan))
        if gone:
            self._remove(props, gone)
        return {**props, **self._outputs(seen)}

    @staticmethod
    def _outputs(seen: Mapping[str, Optional[Mapping[str, Any]]]) -> dict[str, Any]:
        present = {h: s for h, s in sorted(seen.items()) if s}
        return {"host_names": list(present),
                "pool_hosts": {h: {"cards": s["cards"], "source": s["source"], "simulated": s["simulated"]}
                               for h, s in present.items()},
                "free": sum(s["free"] for s in present.values()), "used": sum(s["used"] for s in present.values())}

    def _remove(self, props: dict[str, Any], hosts: list[str]) -> None:
        conn = ops.FleetConnection.from_dict(props["connection"])
        known = {h.name for h in conn.hosts}
        ops.ask_agents(conn, [conn.host(h) for h in hosts if h in known], f"removal of GPU pool {props['pool_name']}",
                       lambda agent: agent.delete_gpu_pool(props["pool_name"]))

    @brief_errors
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["pool_name"], outs=self._apply(props, {}))

    @brief_errors
    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._apply(news, olds.get("pool_hosts") or {}))

    @brief_errors
    def delete(self, _id: str, props: dict[str, Any]) -> None:
        self._remove(props, list(props.get("host_names") or []))

    @brief_errors
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        conn = ops.FleetConnection.from_dict(props["connection"])
        seen = ops.ask_agents(conn, [conn.host(h) for h in props.get("host_names") or []],
                              f"read of GPU pool {props['pool_name']}",
                              lambda agent: agent.get_gpu_pool(props["pool_name"]))
        return ReadResult(id_, {**props, **self._outputs(seen)})


class GpuPool(pulumi.dynamic.Resource):
    """Whole cards of one type reserved on the fleet for the functions bound to it.

    Outputs: ``host_names`` (the hosts giving cards: place bound functions there), ``pool_hosts`` (per host its
    cards by UUID and their source; simulated cards say so), ``free`` and ``used`` (cards, all hosts).
    """

    host_names: pulumi.Output[list]
    pool_hosts: pulumi.Output[dict]
    free: pulumi.Output[int]
    used: pulumi.Output[int]

    def __init__(self, resource_name: str, args: GpuPoolArgs, *, fleet: Fleet,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        """
        :param resource_name: The Pulumi resource name; also the pool's name on the hosts.
        :param args: The pool.
        :param fleet: The fleet whose hosts give the cards.
        :param opts: Pulumi resource options.
        """
        props: dict[str, Any] = {
            "connection": fleet.connection, "pool_name": resource_name, "gpu_type": args.gpu_type,
            "count": args.count, "selector": args.selector, "functions": args.functions, "mix_mode": args.mix_mode,
            "host_names": None, "pool_hosts": None, "free": None, "used": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["connection"],
                                                                         depends_on=[fleet]))
        super().__init__(GpuPoolProvider(), resource_name, props, opts)
