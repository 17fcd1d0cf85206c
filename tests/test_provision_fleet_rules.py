"""The fleet decision of target tracking (events/provision_fleet.py) on a clock the test moves, with the documented
window (60 s) and cooldowns (60 s out, 300 s in): three scalers, each behind the agent's real peer API
(api/peer.serve) on a loopback port, exchange signed samples. Load on one follower scales the fleet only once a full
window of fleet samples is in; every host adopts the decider's numbered decision; a restarted decider takes the
fleet's decision over instead of imposing its default; with the decider gone the next host decides and keeps the
cooldowns it adopted; bad signatures and strangers are refused. The agents on the lab: test_provision_fleet.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from runtime_agent.api import peer as peer_api
from runtime_agent.errors import AgentError
from runtime_agent.events.provision import SCALE_IN_COOLDOWN, WINDOW_SECONDS, FunctionScaler, Tuning
from runtime_agent.events.provision_fleet import FleetDecisions, fleet_value, samples_mac
from runtime_agent.state.provisionstore import ProvisionRecord

CONFIG = {"target": 1, "target_tracking_policies": [
    {"name": "pcu", "metric_type": "ProvisionedConcurrencyUtilization", "metric_target": 0.5, "min_capacity": 1,
     "max_capacity": 4}]}
KEY = "k" * 64
HOSTS = ["h0", "h1", "h2"]


class Host:
    """One agent's scaler and fleet exchange, its peer API served on a loopback port."""

    def __init__(self, rank: int, clock: list[float]) -> None:
        self.name, self.rank, self.scalers = HOSTS[rank], rank, {}
        self.fleet = FleetDecisions(self.name, lambda f, q: self.scalers.get((f, q)), lambda: clock[0])
        agent = SimpleNamespace(provision=SimpleNamespace(fleet=self.fleet))

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    result = peer_api.serve(agent, self.path, body, "req")
                    status, data = result.status, result.body
                except AgentError as exc:
                    status, data = exc.status, json.dumps({"Code": exc.code, "Message": exc.message}).encode()
                self.send_response(status)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def configure(self, peers: list[dict]) -> None:
        record = ProvisionRecord("f", CONFIG, self.rank, HOSTS, {"peers": peers, "peer_key": KEY})
        self.scalers[record.key] = FunctionScaler(record, Tuning())

    @property
    def scaler(self) -> FunctionScaler:
        return self.scalers[("f", "LATEST")]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fleet() -> Iterator[tuple[list[Host], list[float]]]:
    clock = [1_800_000_000.0]
    hosts = [Host(r, clock) for r in range(3)]
    peers = [{"name": h.name, "address": "127.0.0.1", "port": h.server.server_address[1]} for h in hosts]
    for h in hosts:
        h.configure(peers)
    yield hosts, clock
    for h in hosts:
        h.stop()


def load(in_flight: int) -> dict[str, Any]:
    return {"in_flight": in_flight, "instances": max(1, in_flight), "concurrency": 1,
            "ProvisionedConcurrencyUtilization": float(in_flight)}


def tick(hosts: list[Host], clock: list[float], in_flight: dict[str, int]) -> None:
    for h in hosts:
        h.fleet.step(h.scaler, load(in_flight.get(h.name, 0)), clock[0])
    clock[0] += 1.0


def targets(hosts: list[Host]) -> list[tuple[int, str | None, int]]:
    return [(h.scaler.fleet_target, h.scaler.decider, h.scaler.seq) for h in hosts]


def test_load_on_a_follower_scales_the_fleet_after_a_full_window_and_all_adopt_it(fleet: tuple) -> None:
    hosts, clock = fleet
    for _ in range(int(WINDOW_SECONDS) - 1):  # not a full window yet: nothing moves
        tick(hosts, clock, {"h2": 2})
    assert targets(hosts) == [(1, "h0", 0)] * 3
    for _ in range(3):
        tick(hosts, clock, {"h2": 2})
    # utilization 2 (2 in flight over 1 provisioned slot) against 0.5: ceil(1 x 2 / 0.5) = 4, decided by h0
    # from h2's samples alone (h0 has none in flight), adopted by h1 and h2 with the same number.
    assert targets(hosts) == [(4, "h0", 1)] * 3
    assert [h.scaler.host_target for h in hosts] == [2, 1, 1]


def test_a_restarted_decider_takes_the_fleets_decision_over(fleet: tuple) -> None:
    hosts, clock = fleet
    for _ in range(int(WINDOW_SECONDS) + 2):
        tick(hosts, clock, {"h2": 2})
    assert targets(hosts) == [(4, "h0", 1)] * 3
    hosts[0].configure(hosts[0].scaler.record.fleet["peers"])  # h0 restarts: decision 0, its default target
    tick(hosts, clock, {"h2": 2})
    # h0's first answers (decision 0) are older than the followers': ignored; their posts carry decision 1,
    # which h0 takes over. Nobody dropped to the default.
    assert targets(hosts) == [(4, "h0", 1)] * 3


def test_with_the_decider_gone_the_next_host_decides_and_keeps_the_cooldowns(fleet: tuple) -> None:
    hosts, clock = fleet
    for _ in range(int(WINDOW_SECONDS) + 2):
        tick(hosts, clock, {"h2": 2})
    scaled_out = hosts[0].scaler.state()["last_out"]
    hosts[0].stop()  # h0 down: its port refuses
    followers, fell = hosts[1:], None
    for _ in range(int(SCALE_IN_COOLDOWN) + 5):
        tick(followers, clock, {})  # no load any more
        if fell is None and followers[0].scaler.fleet_target < 4:
            fell = clock[0] - 1
    assert targets(followers) == [(1, "h1", 2)] * 2, targets(followers)  # h1 decides, h2 follows it
    # h1 scaled in no earlier than the scale-in cooldown after h0's scale out: it had adopted h0's cooldowns.
    assert fell is not None and fell - scaled_out >= SCALE_IN_COOLDOWN, (fell, scaled_out)


def test_samples_need_the_peer_key_and_a_host_of_the_function(fleet: tuple) -> None:
    hosts, _clock = fleet
    body = {"function": "f", "from": "h1", "config": "", "decision": None, "samples": {"h1": load(5)}}
    with pytest.raises(PermissionError, match="not signed with its provision config's peer key"):
        hosts[0].fleet.receive({**body, "mac": samples_mac("wrong" * 8, body)})
    stranger = {**body, "from": "elsewhere"}
    assert hosts[0].fleet.receive({**stranger, "mac": samples_mac(KEY, stranger)}) is None
    assert hosts[0].fleet.receive({**body, "function": "g", "mac": "x"}) is None
    assert hosts[0].fleet.receive({**body, "mac": samples_mac(KEY, body)})["decider"] == "h0"


def test_the_fleet_value_weighs_hosts() -> None:
    samples = [{"values": {"CPUUtilization": 0.9}, "instances": 3, "in_flight": 3, "concurrency": 2},
               {"values": {"CPUUtilization": 0.1}, "instances": 1, "in_flight": 1, "concurrency": 2},
               {"values": {"CPUUtilization": None}, "instances": 0, "in_flight": 0, "concurrency": 2}]
    assert fleet_value("CPUUtilization", samples, 4) == pytest.approx((0.9 * 3 + 0.1) / 4)
    assert fleet_value("ProvisionedConcurrencyUtilization", samples, 4) == pytest.approx(4 / (4 * 2))
    assert fleet_value("GPUMemUtilization", samples, 4) is None


def test_provision_tuning_is_checked() -> None:
    assert Tuning.from_config({"window_seconds": 3}).window == 3.0
    with pytest.raises(ValueError, match=r"provision_tuning.window: expected one of"):
        Tuning.from_config({"window": 3})
    with pytest.raises(ValueError, match=r"provision_tuning.scale_in_cooldown_seconds"):
        Tuning.from_config({"scale_in_cooldown_seconds": 0})
