"""A test program: one fleet and one function, every knob from stack config (so tests change one at a time)."""

import json

import pulumi

import fc_provider as fc

config = pulumi.Config()
fleet_args = fc.FleetArgs.from_fleet_file(config.require("fleetFile"))
for host in fleet_args.hosts:  # hostLabels: {"lab-1": {"zone": "a"}, ...}
    host.labels = json.loads(config.get("hostLabels") or "{}").get(host.name, host.labels)
fleet = fc.Fleet("fleet", fleet_args)
extra = json.loads(config.get("extra") or "{}")
if config.get_bool("typed"):  # the same nested inputs as typed Args classes: must preview as no change
    if "custom_dns" in extra:
        dns = extra["custom_dns"]
        extra["custom_dns"] = fc.CustomDnsArgs(name_servers=dns.get("name_servers", []),
                                               searches=dns.get("searches", []),
                                               dns_options=[fc.DnsOptionArgs(**o) for o in dns.get("dns_options", [])])
    if "log_config" in extra:
        extra["log_config"] = fc.LogConfigArgs(**extra["log_config"])

args = {
    "function_name": config.require("functionName"),
    "code": config.require("codeDir"),
    "memory_size": config.get_int("memorySize") or 128,
    "timeout": 10,
    "environment_variables": {"GREETING": config.get_secret("greeting") or "hello", "MODE": "test"},
    "tags": {"team": "fc"},
}
fn = fc.Function("fn", fc.FunctionArgs(**{**args, **extra}), fleet=fleet, adopt=config.get_bool("adopt") or False)

container = json.loads(config.get("container") or "null")  # a second function, on runtime custom-container
if container:
    box = fc.Function("box", fc.FunctionArgs(runtime="custom-container", **container), fleet=fleet)
    pulumi.export("box_hosts", box.hosts)

for name in ("function_id", "function_arn", "code_size", "code_checksum", "hosts", "invoke_endpoints",
             "created_time", "last_modified_time", "state"):
    pulumi.export(name, getattr(fn, name))
