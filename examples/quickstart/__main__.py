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

# The key that signs invocations (every request to the invoke API is verified); here allowed to invoke and read
# this one function only. Its secret is a Pulumi secret: `pulumi stack output access_key_secret --show-secrets`.
key = fc.AccessKey(
    "quickstart-key",
    fc.AccessKeyArgs(policy=fc.AccessKeyPolicyArgs(
        actions=["fc:InvokeFunction", "fc:GetFunction"],
        resources=[hello.function_arn],
    )),
    fleet=fleet,
)

pulumi.export("function_name", hello.function_name)
pulumi.export("function_arn", hello.function_arn)
pulumi.export("invoke_endpoints", hello.invoke_endpoints)
pulumi.export("access_key_id", key.access_key_id)
pulumi.export("access_key_secret", key.access_key_secret)  # a secret output
# `fc --stack` signs with the stack's key; with ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET set, plain `fc invoke` does.
pulumi.export("invoke_command", hello.function_name.apply(
    lambda n: f"fc --stack {pulumi.get_stack()} invoke {n} --payload '{{\"name\": \"fc\"}}'"))
