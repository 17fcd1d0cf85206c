"""GPU functions and ProvisionConfig through the real Pulumi CLI, on lab hosts that declare SIMULATED cards: the
function is placed only where cards are, a provision target is split across its hosts by rank and kept started
with a card each, and a bad config fails at preview naming the property."""

from __future__ import annotations

import json
from typing import Any

from _agent import wait_for
from _fleet_agents import agent
from _pulumi import REPO, Stack


def test_a_gpu_function_with_a_provision_config_on_simulated_cards(lab: Any, lab_fleet: dict, fleet_file: Any,
                                                                    tmp_path: Any) -> None:
    stack = Stack(tmp_path, "gpu", program=REPO / "tests" / "programs" / "gpu")
    stack.config(fleetFile=str(fleet_file), target="3")
    try:
        stack.up()
        out = stack.outputs()
        assert out["hosts"] == ["lab-1", "lab-2"]  # lab-3 declares no cards
        assert out["fleet_target"] == 3 and out["host_targets"] == {"lab-1": 2, "lab-2": 1}
        for host, share in (("lab-1", 2), ("lab-2", 1)):
            with agent(lab, lab_fleet, host) as (_ssh, client):
                wait_for(lambda: len([i for i in client.instances() if i["state"] == "ready"]) == share,
                         f"{share} provisioned instance(s) on {host}")
                cards = sorted(c for i in client.instances() for c in i["gpus"])
                assert cards == [f"SIM-GPU-{host}-{n}" for n in range(share)]
                info = client.raw("GET", "/v1/info")[1]["gpus"]
                assert info["source"] == "simulated" and info["types"]["fc.gpu.tesla.1"]["leased"] == share
                # The provider gave every host the peers and key: lab-1 (rank 0) decides for both.
                wait_for(lambda: client.get_provision_config("sd")["decider"] == "lab-1", f"{host} to follow lab-1")
        state = json.loads(stack.run("stack", "export", "--show-secrets").stdout)
        provision = next(r for r in state["deployment"]["resources"] if r["urn"].endswith("::sd-provision"))
        peer_key = json.loads(provision["outputs"]["peer_key"]["plaintext"])  # kept as a secret in the state
        assert len(peer_key) == 64 and peer_key not in stack.export_state()
        stack.up(refresh=True)
        out = stack.outputs()
        assert out["current"] == 3 and out.get("current_error") is None
        # A pool of 3 of the 4 simulated cards, bound to the function: first host first.
        stack.config(target="0", pool="3")
        stack.up()
        out = stack.outputs()
        assert out["pool_host_names"] == ["lab-1", "lab-2"]
        assert out["pool_hosts"]["lab-1"]["cards"] == ["SIM-GPU-lab-1-0", "SIM-GPU-lab-1-1"]
        assert out["pool_hosts"]["lab-2"]["simulated"] is True and len(out["pool_hosts"]["lab-2"]["cards"]) == 1
        with agent(lab, lab_fleet, "lab-1") as (_ssh, client):
            assert client.get_gpu_pool("pool")["functions"] == ["sd"]
        stack.config(pool="5")
        failed = stack.run("preview", check=False)
        assert failed.returncode != 0 and "asks for 5 fc.gpu.tesla.1 card(s) but the matching hosts declare 4" \
            in failed.stdout, failed.stdout
        assert "Traceback" not in failed.stdout + failed.stderr
        # A bad schedule of the same ProvisionConfig: its check, which that preview calls the same way (below).
    finally:
        stack.destroy()


def test_a_bad_schedule_of_the_gpu_provision_config_is_refused_by_check_naming_the_property() -> None:
    """The ProvisionConfig's check, which Pulumi calls at preview with the inputs the program above builds (the
    CLI's rendering of a check failure, without a traceback: the pool's preview in the test above)."""
    import fc_provider as fc
    from fc_provider.provision_config import ProvisionConfigProvider

    args = fc.ProvisionConfigArgs(target=0, scheduled_actions=[fc.ScheduledActionArgs(
        name="a", target=1, schedule_expression="cron(0 0 25 * * *)")])
    news = {"function_name": "sd", "qualifier": args.qualifier, "target": args.target,  # as ProvisionConfig sends
            "always_allocate_cpu": args.always_allocate_cpu, "always_allocate_gpu": args.always_allocate_gpu,
            "scheduled_actions": args.scheduled_actions, "target_tracking_policies": args.target_tracking_policies}
    (failure,) = ProvisionConfigProvider().check({}, news).failures
    assert failure.property == "scheduled_actions", failure
    assert "scheduled_actions[0].schedule_expression 'cron(0 0 25 * * *)'" in failure.reason, failure
