"""Target tracking decided once per fleet, on real agents on the 3 lab hosts: the lowest-ranked host that answers
decides from every host's samples (posted over the signed peer exchange), the others adopt its decision and keep
their share. A synthetic load on one follower scales the fleet out (its samples count: the decider has no load),
every host holds the same target and its share started; with the decider's agent down the next host decides; the
decider back takes the fleet's decision over. The agents run with a short window and cooldowns (provision_tuning),
so nothing sleeps for minutes; every wait is bounded."""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from fc_lab import Lab
from fc_provider._remote import fleetops as ops
from tests._agent import deploy, install, invoke_url, post, wait_for

TUNING = {"window_seconds": 3, "scale_out_cooldown_seconds": 2, "scale_in_cooldown_seconds": 4}
HANDLER = '''
import time
def handler(event, context):
    time.sleep(float(event or b"0"))
    return "ok"
'''
FUNCTION = "tracked"
# One provisioned instance by default; at 2 requests in flight (utilization 2 over 1) the fleet goes to
# ceil(1 x 2 / 0.5) = 4, where 2 in flight is exactly the target (0.5): it stays there until the load stops.
CONFIG = {"target": 1, "target_tracking_policies": [
    {"name": "pcu", "metric_type": "ProvisionedConcurrencyUtilization", "metric_target": 0.5, "min_capacity": 1,
     "max_capacity": 4}]}
SHARES_OF_4 = [2, 1, 1]


@pytest.fixture(scope="module")
def fleet(lab: Lab, lab_fleet: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ops.FleetConnection]]:
    conns = [install(lab_fleet, i, provision_tuning=TUNING) for i in range(3)]
    tmp = tmp_path_factory.mktemp("provfleet")
    for i, conn in enumerate(conns):
        deploy(conn, tmp / str(i), FUNCTION, HANDLER, timeout=10, max_instances=4)
    hosts = [c.hosts[0].name for c in conns]
    peers = [{"name": c.hosts[0].name, "address": c.hosts[0].address, "port": c.invoke_port} for c in conns]
    key = secrets.token_hex(32)
    for rank, conn in enumerate(conns):
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
            agent.put_provision_config(FUNCTION, CONFIG, rank, hosts, peers, key)
    try:
        yield conns
    finally:
        for conn in conns:  # its provisioned instances would hold room on every host for later tests
            with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
                agent.delete_function(FUNCTION)


def status(conn: ops.FleetConnection) -> dict:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        return agent.get_provision_config(FUNCTION)


def statuses(conns: list[ops.FleetConnection]) -> list[dict]:
    return [status(c) for c in conns]


class Load:
    """``threads`` requests kept in flight on one host (each 1 s), at most ``limit`` requests in all."""

    def __init__(self, conn: ops.FleetConnection, threads: int = 2, limit: int = 80) -> None:
        self._url, self._stop, self._left = invoke_url(conn, FUNCTION), threading.Event(), limit
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]
        self.statuses: list[int] = []

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._left <= 0:
                    return
                self._left -= 1
            self.statuses.append(post(self._url, b"1.0")[0])

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
        assert set(self.statuses) <= {200}, self.statuses


def settled(conns: list[ops.FleetConnection], target: int, decider: str) -> list[dict] | None:
    """Every host's status once each holds ``target`` decided by ``decider`` (else None)."""
    seen = statuses(conns)
    return seen if all(s["fleet_target"] == target and s["decider"] == decider for s in seen) else None


def kill_agent(lab: Lab, host: str) -> None:
    for pidfile in ("supervisor.pid", "agent.pid"):  # the supervisor first, or it starts the agent again at once
        pid = lab.run(host, ["cat", f"/var/lib/fc-agent/{pidfile}"], capture_output=True, text=True).stdout.strip()
        assert b"runtime_agent" in Path(f"/proc/{pid}/cmdline").read_bytes()
        os.kill(int(pid), 9)


def test_load_on_one_follower_scales_the_fleet_and_every_host_keeps_its_share(fleet: list) -> None:
    conns = fleet
    start = wait_for(lambda: settled(conns, 1, "lab-1"), "every host to follow lab-1 at the default target", 30)
    assert [s["host_target"] for s in start] == [1, 0, 0], start
    with Load(conns[2]):  # lab-3 only: lab-1, the decider, has nothing in flight
        seen = wait_for(lambda: settled(conns, 4, "lab-1"), "the fleet target to reach 4 on every host", 60)
        assert [s["host_target"] for s in seen] == SHARES_OF_4, seen
        assert len({s["decision_seq"] for s in seen}) == 1, seen  # one decision, adopted by all
        # Each host starts its share (current counts live instances up to it: lab-3's load uses elastic ones too).
        wait_for(lambda: [s["current"] for s in statuses(conns)] == SHARES_OF_4,
                 "every host to start its share of 4", 60)
        # With the target at 4 the load is exactly on target: it holds (no flapping) while the load lasts.
        assert [s["fleet_target"] for s in statuses(conns)] == [4, 4, 4]
    # Load gone: the decider scales the fleet in after the scale-in cooldown, to min_capacity.
    seen = wait_for(lambda: settled(conns, 1, "lab-1"), "the fleet to scale in to 1", 60)
    assert [s["host_target"] for s in seen] == [1, 0, 0], seen
    assert all(s["current_error"] is None for s in seen), seen


def test_the_next_host_decides_while_the_decider_is_down_and_the_decider_back_takes_the_decision_over(
        fleet: list, lab: Lab, lab_fleet: dict) -> None:
    conns = fleet
    wait_for(lambda: settled(conns, 1, "lab-1"), "the fleet at 1, decided by lab-1", 60)
    kill_agent(lab, "lab-1")
    try:
        followers = conns[1:]
        wait_for(lambda: settled(followers, 1, "lab-2"), "lab-2 to decide for lab-2 and lab-3", 30)
        with Load(conns[2]):  # on lab-3: lab-2 decides from lab-3's samples
            seen = wait_for(lambda: settled(followers, 4, "lab-2"), "lab-2's decision to scale out to 4", 60)
        assert [s["host_target"] for s in seen] == SHARES_OF_4[1:], seen
        decided = seen[0]["decision_seq"]
    finally:
        install(lab_fleet, 0, provision_tuning=TUNING)  # lab-1 back (its scaler restarts from the stored config)
    # lab-1 restarts at decision 0: the others ignore its answers (older than theirs) and their posts carry lab-2's
    # decision, which lab-1 takes over (a higher number) before it decides again for all.
    wait_for(lambda: all(x["decider"] == "lab-1" and x["decision_seq"] >= decided for x in statuses(conns)),
             "lab-1 to take lab-2's decision over and decide again", 60)
    wait_for(lambda: settled(conns, 1, "lab-1"), "the fleet to scale in to 1 under lab-1", 60)


def test_a_published_version_keeps_no_provisioned_instances(fleet: list) -> None:
    conns = fleet
    wait_for(lambda: settled(conns, 1, "lab-1"), "the fleet at 1, decided by lab-1", 60)
    with ops.agent_session(conns[0], conns[0].hosts[0]) as (_ssh, agent):
        version = agent.publish_version(FUNCTION, "v1")["version_id"]

        def by_qualifier() -> dict[str, int]:
            live = [i for i in agent.instances() if i["function_name"] == FUNCTION
                    and i["state"] in ("ready", "busy", "frozen")]
            return {q: sum(1 for i in live if i["qualifier"] == q) for q in ("LATEST", version)}

        wait_for(lambda: by_qualifier()["LATEST"] >= 1, "lab-1's provisioned instance of LATEST", 30)
        time.sleep(3)  # a dozen reaper rounds: a version's pool given the share would have started one by now
        counts = by_qualifier()  # LATEST may still hold idle elastic instances of the tests before
        assert counts[version] == 0, counts
        assert agent.get_provision_config(FUNCTION)["current"] == 1  # its share: idle elastic ones do not count
