"""``kill -9`` of the agent while 200 tasks are queued and some run: after the restart every task ends Succeeded,
none is lost, the interrupted ones are run again (a system retry, ``AgentRestart``), and no task that had ended
before the kill runs again."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _agent import deploy, install, post_async, wait_for

from fc_lab import Lab
from fc_provider._remote import commands as cmd
from fc_provider._remote import fleetops as ops
from fc_provider._remote.ssh import SSHSession

TASKS = 200
WORK = "import time\n\ndef handler(event, context):\n    time.sleep(0.2)\n    return event\n"


def _all_tasks(agent, function: str) -> list[dict]:
    tasks, token = [], None
    while True:
        page = agent.list_tasks(function, limit=100, nextToken=token)
        tasks += page["tasks"]
        token = page.get("nextToken")
        if not token:
            return tasks


def test_kill_9_loses_no_task_and_reruns_no_finished_one(lab: Lab, lab_fleet: dict, tmp_path: Path) -> None:
    conn = install(lab_fleet, 2)
    try:
        url = deploy(conn, tmp_path, "crashy", WORK, max_instances=4)
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda i: post_async(url, f"e{i}".encode()), range(TASKS)))
        assert [a[0] for a in answers] == [202] * TASKS
        ids = {a[1]["x-fc-request-id"] for a in answers}
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
            wait_for(lambda: sum(t["status"] == "Succeeded" for t in _all_tasks(agent, "crashy")) >= 10,
                     "the first tasks to finish")
            before = {t["taskId"]: t for t in _all_tasks(agent, "crashy")}
        host = conn.hosts[0].name
        lab.run(host, ["sh", "-c", "kill -9 $(cat /var/lib/fc-agent/agent.pid)"], check=True)
        finished_before = {i: t for i, t in before.items() if t["status"] == "Succeeded"}
        assert len(finished_before) < TASKS  # the kill came while tasks were still queued
        with SSHSession(conn.hosts[0], conn.private_key) as ssh:
            ssh.run(cmd.start_agent())
        with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
            agent.wait_healthy()
            after = wait_for(lambda: (ts := _all_tasks(agent, "crashy")) and all(
                t["status"] == "Succeeded" for t in ts) and ts, "every task to succeed after the restart", 120)
        by_id = {t["taskId"]: t for t in after}
        assert set(by_id) == ids and len(after) == TASKS  # none lost, none doubled
        for task_id, old in finished_before.items():  # ended before the kill: untouched since
            assert by_id[task_id]["events"] == old["events"]
        restarted = [t for t in after if any('"AgentRestart"' in e["eventDetail"] for e in t["events"])]
        assert restarted, "some tasks were in hand when the agent was killed"
        for t in restarted:
            statuses = [e["status"] for e in t["events"]]
            assert statuses[-1] == "Succeeded" and statuses.count("Succeeded") == 1
            if "Retrying" in statuses:  # it was running: it ran again, as a system retry
                assert statuses.count("Running") >= 2 and t["alreadyRetriedTimes"] >= 1
    finally:
        ops.uninstall_agent(conn, conn.hosts[0])
