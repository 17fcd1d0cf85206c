"""A task function: an event function with task mode on (FC's fourth function type), a batch job that runs for
minutes, and what becomes of its outcome (a webhook, when config ``resultWebhook`` is set)."""

import os

import pulumi

import fc_provider as fc

config = pulumi.Config()
here = os.path.dirname(os.path.abspath(__file__))

fleet = fc.Fleet("fleet", fc.FleetArgs.from_fleet_file(config.get("fleetFile") or "/var/lib/fc-lab/fleet.json"))

batch = fc.Function(
    "batch",
    fc.FunctionArgs(
        function_name=config.get("functionName") or "batch",
        code=os.path.join(here, "app"),
        handler="index.handler",
        description="A batch job that takes minutes, run as an asynchronous task",
        memory_size=128,
        timeout=3600,  # a task may run for an hour
        max_instances=2,
        placement=fc.PlacementArgs(hosts=[config.get("host") or "lab-1"]),
    ),
    fleet=fleet,
)

webhook = config.get("resultWebhook")
tasks = fc.AsyncInvokeConfig(
    "batch-tasks",
    fc.AsyncInvokeConfigArgs(
        async_task=True,  # task mode: task ids, states, events, list/get/stop
        max_async_retry_attempts=config.get_int("maxRetries") if config.get_int("maxRetries") is not None else 1,
        max_async_event_age_in_seconds=6 * 3600,
        destination_config=fc.DestinationConfigArgs(
            on_failure=fc.DestinationArgs(destination=webhook)) if webhook else None,
    ),
    function=batch,
)

pulumi.export("function_name", batch.function_name)
pulumi.export("invoke_endpoints", batch.invoke_endpoints)
pulumi.export("submit", batch.function_name.apply(
    lambda n: f"fc invoke {n} --async --task-id job-1 --payload '{{\"items\": 120}}'"))
pulumi.export("query", batch.function_name.apply(lambda n: f"fc tasks list {n}; fc tasks get {n} job-1"))
pulumi.export("stop", batch.function_name.apply(lambda n: f"fc tasks stop {n} job-1"))
