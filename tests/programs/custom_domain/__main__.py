"""A test program: a fleet whose lab-1 is the edge host, two functions with an HTTP trigger each (hello's public,
shout's signed), and a CustomDomain in front of them; the routes and the rest of the domain come from stack config
(so tests change one thing at a time)."""

import json
from pathlib import Path

import pulumi

import fc_provider as fc

config = pulumi.Config()
fleet_args = fc.FleetArgs.from_fleet_file(config.require("fleetFile"))
for host in fleet_args.hosts:
    if host.name == "lab-1":
        host.labels = {**host.labels, "front-door": "true"}
fleet = fc.Fleet("fleet", fleet_args)
code = Path(config.require("codeDir"))
hello = fc.Function("hello", fc.FunctionArgs(code=str(code / "hello"), timeout=5), fleet=fleet)
shout = fc.Function("shout", fc.FunctionArgs(code=str(code / "shout"), timeout=5), fleet=fleet)
web = fc.Trigger("hello-web", fc.TriggerArgs(function=hello, trigger_type="http", trigger_name="web",
                 trigger_config=fc.HttpTriggerConfigArgs(auth_type="anonymous", methods=["GET", "POST"])))
signed = fc.Trigger("shout-web", fc.TriggerArgs(function=shout, trigger_type="http", trigger_name="web",
                    trigger_config=fc.HttpTriggerConfigArgs(auth_type="function", methods=["GET", "POST"])))

domain = json.loads(config.get("domain") or "{}")
routes = domain.pop("routes", [{"path": "/*", "function_name": "hello"}])
cert = None
if config.get("certFile"):
    cert = fc.CertConfigArgs(cert_name="test", certificate=Path(config.require("certFile")).read_text(),
                             private_key=pulumi.Output.secret(Path(config.require("keyFile")).read_text()))
front_door = domain.pop("front_door", None)
api = fc.CustomDomain("api", fc.CustomDomainArgs(
    domain_name=domain.pop("domain_name", "api.example.test"),
    route_config=fc.RouteConfigArgs(routes=[fc.PathConfigArgs(**r) for r in routes]),
    front_door=fc.FrontDoorArgs(**front_door) if front_door else None,
    cert_config=cert, functions=[hello, shout], triggers=[web, signed], invoke_api=True, **domain),
    fleet=fleet)

for name in ("urls", "edge_hosts", "edge_addresses", "front_door_state"):
    pulumi.export(name, getattr(api, name))
