"""Test and bench program: a Fleet from a fleet file and `count` functions named `{prefix}-{i}` sharing one code
folder. Several stacks of it share one lab fleet (distinct prefixes)."""

import pulumi

import fc_provider as fc

config = pulumi.Config()
prefix = config.require("prefix")
fleet = fc.Fleet("fleet", fc.FleetArgs.from_fleet_file(
    config.require("fleetFile"), lock_timeout_seconds=float(config.get("lockTimeout") or 120)))
functions = [
    fc.Function(f"fn{i}", fc.FunctionArgs(function_name=f"{prefix}-{i}", code=config.require("codeDir"),
                                           handler="index.handler", memory_size=128, timeout=10), fleet=fleet)
    for i in range(int(config.get("count") or 1))
]
pulumi.export("functions", [f.function_name for f in functions])
