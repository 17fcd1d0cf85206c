"""A custom-container function: the image's own web server (built on each host from ./image), several requests per
instance, a health check, no outbound network, and its logs in a local logstore."""

import pulumi

import fc_provider as fc

config = pulumi.Config()
fleet = fc.Fleet("fleet", fc.FleetArgs.from_fleet_file(config.get("fleetFile") or "/var/lib/fc-lab/fleet.json"))

web = fc.Function(
    "container",
    fc.FunctionArgs(
        function_name="container-echo",
        runtime="custom-container",
        # Built on every host beforehand: `fc-lab build-image examples/container_function/image
        # --tag fc-example/container-echo:1` (no registry is reachable; see README.md).
        custom_container_config=fc.CustomContainerConfigArgs(
            image=config.get("image") or "fc-example/container-echo:1",
            port=9000,
            health_check_config=fc.HealthCheckConfigArgs(http_get_url="/", initial_delay_seconds=1, period_seconds=5,
                                                         timeout_seconds=1, failure_threshold=3),
        ),
        instance_concurrency=10,
        memory_size=256,
        timeout=30,
        internet_access=False,
        log_config=fc.LogConfigArgs(project="examples", logstore="container-echo"),
        tags={"example": "container_function"},
    ),
    fleet=fleet,
)

pulumi.export("invoke_endpoints", web.invoke_endpoints)
