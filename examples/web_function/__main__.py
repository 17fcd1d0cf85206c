"""A web function on the custom runtime: several requests per instance, kept warm, hibernating when idle."""

import os

import pulumi

import fc_provider as fc

config = pulumi.Config()
here = os.path.dirname(os.path.abspath(__file__))
fleet = fc.Fleet("fleet", fc.FleetArgs.from_fleet_file(config.get("fleetFile") or "/var/lib/fc-lab/fleet.json"))

web = fc.Function(
    "web",
    fc.FunctionArgs(
        function_name="web-echo",
        runtime="custom.debian12",
        code=os.path.join(here, "app"),
        custom_runtime_config=fc.CustomRuntimeConfigArgs(command=["python3", "-u", "server.py"], port=8080),
        instance_concurrency=20,
        memory_size=512,
        min_instances=1,
        hibernation=True,
        timeout=30,
        description="An echo server: many requests per instance, kept warm, hibernating when idle",
        # FC's log_config: each invocation's lines go to /var/lib/fc-agent/logs/web/echo.jsonl on its host.
        log_config=fc.LogConfigArgs(project="web", logstore="echo", enable_request_metrics=True),
        tags={"example": "web_function"},
    ),
    fleet=fleet,
)

pulumi.export("invoke_endpoints", web.invoke_endpoints)
