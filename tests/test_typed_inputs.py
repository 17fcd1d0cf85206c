"""Typed nested inputs (``fc.CustomRuntimeConfigArgs`` and friends) reach the provider as exactly the dicts that
work today, pass the same validation, and a wrong class is a clear error naming the argument. That a program
switching from dicts to typed inputs previews no change through the real CLI is in test_function_lifecycle."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import fc_provider as fc
from fc_provider._inputs import InputArgs
from fc_provider._model import function_state as fs
from fc_provider._model.validation import FunctionModel, check

TYPED = [getattr(fc, n) for n in fc.__all__ if isinstance(getattr(fc, n), type) and issubclass(getattr(fc, n),
                                                                                                InputArgs)]
CHECKSUM = "0" * 64


def test_every_nested_input_has_a_typed_class_with_a_documented_field_each() -> None:
    assert {c.__name__ for c in TYPED} >= {  # the Function's and Fleet's; other resources add their own
        "CustomContainerConfigArgs", "CustomDnsArgs", "CustomRuntimeConfigArgs", "DnsOptionArgs",
        "HealthCheckConfigArgs", "HostCapacityArgs", "InstanceLifecycleConfigArgs", "LifecycleHookArgs",
        "LogConfigArgs", "PlacementArgs",
        # CustomDomain's (fc_provider/custom_domain.py)
        "CertConfigArgs", "TlsConfigArgs", "PathConfigArgs", "RouteConfigArgs", "FrontDoorArgs",
        # the GPU resources' (fc_provider/gpu_pool.py, provision_config.py) and the Function's gpu_config
        "GpuConfigArgs", "HostGpusArgs", "SimulatedGpuArgs", "ScheduledActionArgs", "TargetTrackingPolicyArgs",
        # fc.Trigger's (issue 10)
        "HttpTriggerConfigArgs", "JwtAuthConfigArgs", "TimerTriggerConfigArgs", "OssTriggerConfigArgs",
        "OssKeyFilterArgs", "OssSourceArgs",
        # fc.AsyncInvokeConfig's (issue 12)
        "DestinationArgs", "DestinationConfigArgs",
        # the Fleet's stem cells (issue 15)
        "StemCellsArgs"}
    for cls in TYPED:
        doc = inspect.getdoc(cls) or ""
        for field in dataclasses.fields(cls):
            assert f":param {field.name}:" in doc, f"{cls.__name__}.{field.name} has no docstring"
            line = doc.split(f":param {field.name}:")[1].split("\n:param")[0]
            assert "Default" in line or "Required" in line, f"{cls.__name__}.{field.name} states no default"


def test_typed_inputs_give_the_same_props_as_dicts() -> None:
    health = {"http_get_url": "/ping", "initial_delay_seconds": 1, "period_seconds": 5, "timeout_seconds": 1,
              "failure_threshold": 3, "success_threshold": 1}
    as_dicts = fc.FunctionArgs(
        runtime="custom.debian12", code="/nowhere",
        custom_runtime_config={"command": ["python3", "server.py"], "port": 8080, "health_check_config": health},
        instance_lifecycle_config={"initializer": {"handler": "index.init", "timeout": 10}},
        custom_dns={"name_servers": ["10.0.0.53"], "searches": ["svc.local"],
                    "dns_options": [{"name": "ndots", "value": "2"}]},
        log_config={"project": "life", "logstore": "calls", "enable_request_metrics": True},
        placement={"selector": {"zone": "a"}, "replicas": 2})
    typed = fc.FunctionArgs(
        runtime="custom.debian12", code="/nowhere",
        custom_runtime_config=fc.CustomRuntimeConfigArgs(command=["python3", "server.py"], port=8080,
                                                         health_check_config=fc.HealthCheckConfigArgs(**health)),
        instance_lifecycle_config=fc.InstanceLifecycleConfigArgs(
            initializer=fc.LifecycleHookArgs(handler="index.init", timeout=10)),
        custom_dns=fc.CustomDnsArgs(name_servers=["10.0.0.53"], searches=["svc.local"],
                                    dns_options=[fc.DnsOptionArgs(name="ndots", value="2")]),
        log_config=fc.LogConfigArgs(project="life", logstore="calls", enable_request_metrics=True),
        placement=fc.PlacementArgs(selector={"zone": "a"}, replicas=2))
    for key in ("custom_runtime_config", "instance_lifecycle_config", "custom_dns", "log_config", "placement"):
        old, new = {key: getattr(as_dicts, key)}, {key: getattr(typed, key)}
        assert fs.normalized(new, key) == fs.normalized(old, key), key
    props = {k: getattr(typed, k) for k in ("runtime", "custom_runtime_config", "instance_lifecycle_config",
                                            "custom_dns", "log_config", "placement")}
    assert check(FunctionModel, {**props, "function_name": "typed", "code_checksum": CHECKSUM}) == []
    assert fc.PlacementArgs(hosts=["lab-1", "lab-2"]).to_input() == ["lab-1", "lab-2"]
    assert fc.FunctionArgs(placement=fc.PlacementArgs(hosts=["lab-1"])).placement == ["lab-1"]


def test_a_container_config_and_host_capacity_in_typed_form() -> None:
    args = fc.FunctionArgs(runtime="custom-container",
                           custom_container_config=fc.CustomContainerConfigArgs(image="fc-example/echo:1"))
    assert args.custom_container_config == {"image": "fc-example/echo:1", "port": 9000}
    host = fc.HostArgs(name="h", address="10.0.0.1", host_public_key="ssh-ed25519 AAAA",
                       capacity=fc.HostCapacityArgs(cpu=2, memory_mb=4096))
    assert host.to_dict()["capacity"] == {"cpu": 2, "memory_mb": 4096}


def test_typed_inputs_are_validated_like_dicts_naming_the_property() -> None:
    args = fc.FunctionArgs(custom_dns=fc.CustomDnsArgs(name_servers=["not-an-ip"]),
                           log_config=fc.LogConfigArgs(project="UPPER", logstore="ok"))
    failures = dict(check(FunctionModel, {"function_name": "f", "code_checksum": CHECKSUM,
                                          "custom_dns": args.custom_dns, "log_config": args.log_config}))
    assert "custom_dns.name_servers.0" in failures["custom_dns"]
    assert "log_config.project" in failures["log_config"]


@pytest.mark.parametrize("argument, value, message", [
    ("custom_dns", fc.LogConfigArgs(project="p", logstore="l"), "custom_dns takes CustomDnsArgs (or a dict), not "
                                                                "LogConfigArgs"),
    ("custom_runtime_config", "python3 server.py", "custom_runtime_config takes CustomRuntimeConfigArgs or a dict, "
                                                   "not str"),
    ("placement", fc.CustomDnsArgs(), "placement takes PlacementArgs, a list of host names or a dict, not "
                                      "CustomDnsArgs"),
    ("placement", "lab-1", "placement takes PlacementArgs, a list of host names or a dict, not str"),
])
def test_a_wrong_kind_of_input_names_the_argument(argument: str, value: object, message: str) -> None:
    with pytest.raises(TypeError) as exc:
        fc.FunctionArgs(**{argument: value})
    assert str(exc.value) == message


def test_placement_args_take_exactly_one_shape() -> None:
    with pytest.raises(TypeError, match="exactly one of hosts and selector"):
        fc.PlacementArgs()
    with pytest.raises(TypeError, match="exactly one of hosts and selector"):
        fc.PlacementArgs(hosts=["a"], selector={"zone": "a"})
