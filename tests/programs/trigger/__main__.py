"""Triggers of a function named by config (no Function resource): for previews of bad trigger configs and a trigger
of a function that does not exist. Config: fleetFile, triggers = JSON list of {name, function, type, config}."""

import json

import pulumi

import fc_provider as fc

config = pulumi.Config()
fleet = fc.Fleet("fleet", fc.FleetArgs.from_fleet_file(config.require("fleetFile")))
for t in json.loads(config.get("triggers") or "[]"):
    fc.Trigger(t["name"], fc.TriggerArgs(function=t["function"], trigger_type=t["type"],
                                         trigger_config=t.get("config"), qualifier=t.get("qualifier", "LATEST"),
                                         description=t.get("description", "")), fleet=fleet)
