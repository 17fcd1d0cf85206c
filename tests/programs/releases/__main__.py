"""A test program: one function, its published versions and an alias, all from stack config.

Config: fleetFile, codeDir; versions: JSON list of FunctionVersion resource names (each publishes LATEST when it is
created); alias: JSON {"version": a name from versions or a literal id, "weights": {name or id: weight}}; provision: a
target for a ProvisionConfig on the alias (its qualifier is the alias's name, an output)."""

import json

import pulumi

import fc_provider as fc

config = pulumi.Config()
fleet = fc.Fleet("fleet", fc.FleetArgs.from_fleet_file(config.require("fleetFile")))
fn = fc.Function("fn", fc.FunctionArgs(function_name="releases-fn", code=config.require("codeDir"), timeout=10),
                 fleet=fleet)
versions = {name: fc.FunctionVersion(name, fc.FunctionVersionArgs(description=f"published as {name}"), function=fn)
            for name in json.loads(config.get("versions") or "[]")}


def version(ref: str):
    return versions[ref].version_id if ref in versions else ref


alias = json.loads(config.get("alias") or "null")
if alias:
    prod = fc.Alias("prod", fc.AliasArgs(version_id=version(alias["version"]),
                                         additional_version_weight={version(k): w for k, w in
                                                                    (alias.get("weights") or {}).items()}),
                    function=fn)
    pulumi.export("alias_version", prod.version_id)
    if config.get_int("provision") is not None:
        warm = fc.ProvisionConfig("prod-provision", fc.ProvisionConfigArgs(
            target=config.get_int("provision"), qualifier=prod.alias_name), function=fn, fleet=fleet)
        pulumi.export("provision_version", warm.version_id)
        pulumi.export("provision_targets", warm.host_targets)

pulumi.export("invoke_endpoints", fn.invoke_endpoints)
pulumi.export("version_ids", {name: v.version_id for name, v in versions.items()})
