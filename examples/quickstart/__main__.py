"""Quickstart: a fleet from a fleet file (as `fc-lab up` writes) and one Python function on it."""

import os

import pulumi

import fc_provider as fc

config = pulumi.Config()
fleet_file = config.get("fleetFile") or "/var/lib/fc-lab/fleet.json"
here = os.path.dirname(os.path.abspath(__file__))

fleet = fc.Fleet("fleet", fc.FleetArgs.from_fleet_file(fleet_file))

hello = fc.Function(
    "hello",
    fc.FunctionArgs(
        function_name=config.get("functionName") or "hello",
        code=config.get("codeDir") or os.path.join(here, "app"),
        handler="index.handler",
        description="The quickstart's greeting function",
        memory_size=128,
        timeout=10,
        environment_variables={"GREETING": "hello"},
        tags={"example": "quickstart"},
    ),
    fleet=fleet,
)

pulumi.export("function_name", hello.function_name)
pulumi.export("function_arn", hello.function_arn)
pulumi.export("invoke_endpoints", hello.invoke_endpoints)
pulumi.export("fc_invoke_command", hello.function_name.apply(lambda n: f"fc invoke {n} --payload '{{\"name\": \"fc\"}}'"))
pulumi.export(
    "invoke_command",
    hello.invoke_endpoints.apply(lambda urls: f"curl -s -X POST {urls[0]} -d '{{\"name\": \"fc\"}}'"),
)
