"""A function run on a schedule by a timer trigger: once per tick across the fleet, whichever hosts run it.

    pulumi config set schedule "0 */5 * * * *"   # 6 fields, seconds first, UTC; or "CRON_TZ=Asia/Shanghai 0 0 4 * * *",
                                                  # "@every 90s", "@daily"
    pulumi up
    fc logs cron-report                           # each tick's log lines
"""

import os

import pulumi

import fc_provider as fc

config = pulumi.Config()
here = os.path.dirname(os.path.abspath(__file__))
fleet = fc.Fleet("fleet", fc.FleetArgs.from_fleet_file(config.get("fleetFile") or "/var/lib/fc-lab/fleet.json"))

report = fc.Function(
    "report",
    fc.FunctionArgs(function_name="cron-report", code=os.path.join(here, "app"), handler="index.handler",
                    description="Runs on a schedule"),
    fleet=fleet,
)

timer = fc.Trigger("every-five-minutes", fc.TriggerArgs(
    function=report,
    trigger_type="timer",
    trigger_config=fc.TimerTriggerConfigArgs(
        cron_expression=config.get("schedule") or "0 */5 * * * *",
        payload=config.get("payload") or "nightly report",
        enable=config.get_bool("enable") is not False,
    ),
))

pulumi.export("trigger_id", timer.trigger_id)
pulumi.export("hosts", timer.hosts)
