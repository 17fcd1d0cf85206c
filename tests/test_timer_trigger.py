"""Timer triggers across the 3 lab hosts: every tick fires exactly once across the fleet, at its second; enable
false stops it; killing the agent of the host that fires moves the timer to the next host without a duplicate
tick. Real agents on every lab host; the ticks are read back from each agent's request log."""

from __future__ import annotations

import json
import math
import os
import secrets
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fc_lab import Lab
from fc_provider._remote import fleetops as ops
from tests._agent import deploy, install, wait_for

HANDLER = '''
import json, time
def handler(event, context):
    started = time.time()
    e = json.loads(event)
    print("FIRED " + json.dumps({"t": e["triggerTime"], "name": e["triggerName"], "payload": e["payload"],
                                 "at": started}))
    return "ok"
'''
EVERY = 2  # seconds between ticks
# The host of rank 0 fires at the tick plus its claim round-trips and the invocation's own start; a warm
# instance is kept (min_instances) so that the figure is the timer's, not a cold start's.
TOLERANCE = 0.9


@pytest.fixture(scope="module")
def fleet(lab_fleet: dict, tmp_path_factory: pytest.TempPathFactory) -> list[ops.FleetConnection]:
    conns = [install(lab_fleet, i) for i in range(3)]
    tmp = tmp_path_factory.mktemp("timer")
    for i, conn in enumerate(conns):
        deploy(conn, tmp / str(i), "ticker", HANDLER, min_instances=1)
    return conns


def put_timer(conns: list[ops.FleetConnection], name: str, config: dict, key: str) -> None:
    peers = [{"name": c.hosts[0].name, "address": c.hosts[0].address, "port": c.invoke_port} for c in conns]
    for conn in conns:
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
            agent.put_trigger("ticker", name, {"trigger_type": "timer", "trigger_config": config, "peers": peers,
                                               "peer_key": key})


def firings(conns: list[ops.FleetConnection], name: str) -> list[dict]:
    """Every tick of trigger ``name`` fired on any host: {"t", "at", "host", ...}."""
    found = []
    for conn in conns:
        try:
            with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
                logs = agent.logs(function="ticker")
        except Exception:  # noqa: BLE001 - the killed host: its agent does not answer
            continue
        for entry in logs:
            for line in entry["log"].splitlines():
                if line.startswith("FIRED "):
                    fired = json.loads(line[len("FIRED "):])
                    if fired["name"] == name:
                        found.append({**fired, "host": conn.hosts[0].name})
    return found


def scheduled(fired: dict) -> float:
    return datetime.strptime(fired["t"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def test_each_tick_fires_once_across_three_hosts_at_its_second(fleet: list[ops.FleetConnection]) -> None:
    put_timer(fleet, "every2s", {"cronExpression": f"*/{EVERY} * * * * *", "payload": "hi"}, secrets.token_hex(16))
    started = time.time()
    time.sleep(16)  # eight ticks
    put_timer(fleet, "every2s", {"cronExpression": f"*/{EVERY} * * * * *", "enable": False, "payload": "hi"},
              secrets.token_hex(16))
    stopped = time.time()
    fired = firings(fleet, "every2s")
    ticks = Counter(f["t"] for f in fired)
    assert all(n == 1 for n in ticks.values()), ticks  # once per tick across the fleet
    expected = {t for t in range(int(started) + 1, int(stopped)) if t % EVERY == 0}
    got = {scheduled(f) for f in fired}
    assert expected - {min(expected), max(expected)} <= got, (sorted(expected), sorted(got))  # none missed
    assert {f["host"] for f in fired} == {"lab-1"}  # rank 0 holds the timer while it is up
    lateness = sorted(f["at"] - scheduled(f) for f in fired)
    assert 0 <= lateness[0] and lateness[-1] < TOLERANCE, lateness
    print(f"timer jitter over {len(lateness)} ticks: p50 {lateness[len(lateness) // 2] * 1e3:.1f} ms, "
          f"max {lateness[-1] * 1e3:.1f} ms")
    time.sleep(EVERY * 2)  # enable: false stopped it
    assert len(firings(fleet, "every2s")) == len(fired)


def test_killing_the_firing_host_moves_the_timer_without_a_duplicate(fleet: list[ops.FleetConnection], lab: Lab,
                                                                     lab_fleet: dict) -> None:
    put_timer(fleet, "failover", {"cronExpression": f"@every {EVERY}s"}, secrets.token_hex(16))
    wait_for(lambda: any(f["host"] == "lab-1" for f in firings(fleet, "failover")), "lab-1 to fire", 20)
    kill_supervisor(lab, "lab-1")  # or it starts the agent again at once and the host never goes down
    pid = lab.run("lab-1", ["cat", "/var/lib/fc-agent/agent.pid"], capture_output=True, text=True).stdout.strip()
    assert b"runtime_agent" in Path(f"/proc/{pid}/cmdline").read_bytes()
    killed = time.time()
    os.kill(int(pid), 9)
    try:
        wait_for(lambda: sum(f["host"] == "lab-2" for f in firings(fleet, "failover")) >= 4, "lab-2 to take over",
                 30)
        fired = firings(fleet[1:], "failover")
        ticks = Counter(f["t"] for f in fired)
        assert all(n == 1 for n in ticks.values()), ticks
        taken = sorted(scheduled(f) for f in fired if f["host"] == "lab-2")
        assert taken[0] - killed < EVERY + 2  # the first tick after the kill is not lost
        late = [f["at"] - scheduled(f) for f in fired if f["host"] == "lab-2"]
        assert all(1.0 <= x < 1.0 + TOLERANCE for x in late), late  # rank 1's turn: one HANDOVER later
        assert {f["host"] for f in fired} <= {"lab-2"}  # lab-3 stays quiet while lab-2 is up
    finally:
        install(lab_fleet, 0)  # the agent back on lab-1 (its token and state kept), for what follows
    # lab-1's agent, back, made up no tick that lab-2 had fired (its catch-up claim is refused)
    time.sleep(EVERY * 2)
    fired = firings(fleet, "failover")
    assert all(n == 1 for n in Counter(f["t"] for f in fired).values()), Counter(f["t"] for f in fired)


def test_ticks_missed_while_no_host_could_fire_are_made_up_once_not_as_a_burst(
        fleet: list[ops.FleetConnection], lab: Lab, lab_fleet: dict) -> None:
    """A timer on lab-3 alone: its agent is down for several ticks; back, it fires the last missed tick once."""
    conn = fleet[2]
    peers = [{"name": conn.hosts[0].name, "address": conn.hosts[0].address, "port": conn.invoke_port}]
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        agent.put_trigger("ticker", "lonely", {"trigger_type": "timer", "peers": peers, "peer_key": "k" * 32,
                                               "trigger_config": {"cronExpression": "@every 4s"}})
    wait_for(lambda: firings([conn], "lonely"), "a first tick", 20)
    kill_supervisor(lab, "lab-3")  # or it starts the agent again at once and the host never goes down
    pid = lab.run("lab-3", ["cat", "/var/lib/fc-agent/agent.pid"], capture_output=True, text=True).stdout.strip()
    assert b"runtime_agent" in Path(f"/proc/{pid}/cmdline").read_bytes()
    os.kill(int(pid), 9)
    down = time.time()
    time.sleep(9)  # two or three ticks pass with no host able to fire them
    install(lab_fleet, 2)
    # When the agent started again (it writes its pidfile then): ticks scheduled before it were missed.
    started = float(lab.run("lab-3", ["python3", "-c", "import os; print(os.stat('/var/lib/fc-agent/agent.pid')"
                                      ".st_mtime)"], capture_output=True, text=True, check=True).stdout)
    try:
        wait_for(lambda: len([f for f in firings([conn], "lonely") if scheduled(f) > started]) >= 1,
                 "a tick after the return", 20)
        after = sorted((f for f in firings([conn], "lonely") if f["at"] > down), key=lambda f: f["at"])
        ticks = [scheduled(f) for f in after]
        first_missed = math.ceil(down / 4) * 4  # down >= 9 s: this tick and the next were missed at least
        assert ticks[0] < started, after  # a tick missed while the agent was down was made up ...
        assert ticks[0] > first_missed, after  # ... the last one missed only, not a burst of them
        assert ticks == [ticks[0] + 4 * i for i in range(len(ticks))], after  # then each tick once, in order
    finally:
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
            agent.delete_trigger("ticker", "lonely")


def kill_supervisor(lab: Lab, host: str) -> None:
    pid = lab.run(host, ["cat", "/var/lib/fc-agent/supervisor.pid"], capture_output=True, text=True).stdout.strip()
    assert b"runtime_agent" in Path(f"/proc/{pid}/cmdline").read_bytes()
    os.kill(int(pid), 9)
