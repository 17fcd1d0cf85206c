"""A test program: one layer used by two functions, from stack config.

Config: fleetFile, layerCode (a folder or archive), codeDir; runtime of the second function (default python3.11);
extraLayerArn: an ARN string the second function lists after the layer (default none)."""

import pulumi

import fc_provider as fc

config = pulumi.Config()
fleet = fc.Fleet("fleet", fc.FleetArgs.from_fleet_file(config.require("fleetFile")))
layer = fc.LayerVersion("greeter", fc.LayerVersionArgs(code=config.require("layerCode"),
                                                       compatible_runtime=["python3.11"], description="greetings"),
                        fleet=fleet)
first = fc.Function("first", fc.FunctionArgs(code=config.require("codeDir"), layers=[layer]), fleet=fleet)
second_layers = [layer] + ([config.get("extraLayerArn")] if config.get("extraLayerArn") else [])
second = fc.Function("second", fc.FunctionArgs(code=config.require("codeDir"), runtime=config.get("runtime")
                                               or "python3.11", layers=second_layers), fleet=fleet)
pulumi.export("arn", layer.layer_version_arn)
pulumi.export("checksum", layer.code_checksum)
pulumi.export("endpoints", [first.invoke_endpoints, second.invoke_endpoints])
