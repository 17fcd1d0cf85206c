"""The Function resource's properties: which are inputs, which the agent gets, how two sets of them compare, and
how the state seen on the hosts folds back into outputs. Pure functions; no host is contacted here."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from pydantic import TypeAdapter, ValidationError

from fc_common.naming import ARN_ACCOUNT, ARN_REGION, function_arn, function_id  # noqa: F401 - re-exported

from .validation import UNKNOWN, FunctionModel, has_unknown

# Sent to the agent as the function's spec; everything else is the provider's business.
SPEC_KEYS = ("description", "runtime", "handler", "memory_size", "cpu", "timeout", "disk_size",
             "instance_concurrency", "max_instances", "min_instances", "hibernation", "instance_lifecycle_config",
             "custom_runtime_config", "custom_container_config", "environment_variables", "internet_access",
             "custom_dns", "log_config", "tags", "layers", "gpu_config")
OUTPUT_KEYS = ("function_id", "function_arn", "code_size", "hosts", "invoke_endpoints", "created_time",
               "last_modified_time", "state")
# Inputs that decide nothing on a host: where the code sits (its checksum counts), why it failed to pack (check
# reports it), and how to reach the fleet (a rotated key or token changes no function).
NOT_DIFFED = {"code", "code_error", "connection", "layer_runtimes"}  # and "adopt", which matters to create only
DIFFED = tuple(k for k in FunctionModel.model_fields if k not in NOT_DIFFED)
REPLACE_ON = ("function_name",)
INPUT_KEYS = tuple(FunctionModel.model_fields) + ("code", "connection", "adopt")

_ADAPTERS = {name: TypeAdapter(field.annotation) for name, field in FunctionModel.model_fields.items()}


def normalized(props: Mapping[str, Any], key: str) -> Any:
    """A property as the agent would hold it: defaults for absent values, numbers in their declared type (Pulumi
    hands numbers over as floats), nested defaults filled in. Unknown values stay unknown."""
    value = props.get(key)
    field = FunctionModel.model_fields[key]
    if value is None:
        value = field.get_default(call_default_factory=True)
    if has_unknown(value):
        return UNKNOWN
    adapter = _ADAPTERS[key]
    try:
        return adapter.dump_python(adapter.validate_python(value), mode="json")
    except ValidationError:
        return value


def changed_keys(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
    return [k for k in DIFFED if normalized(olds, k) != normalized(news, k) or normalized(news, k) == UNKNOWN]


def agent_spec(props: Mapping[str, Any]) -> dict[str, Any]:
    """The spec sent to every placed host."""
    model = FunctionModel.model_validate({k: v for k, v in props.items() if v is not None and k in INPUT_KEYS})
    data = model.model_dump(mode="json")
    spec = {k: data[k] for k in SPEC_KEYS if data.get(k) is not None}
    if model.code_checksum is not None:
        spec["code_checksum"] = model.code_checksum
    return spec


def invoke_endpoints(conn_hosts: Mapping[str, Any], invoke_port: int, name: str, hosts: list[str]) -> list[str]:
    return [f"http://{conn_hosts[h]['address']}:{invoke_port}/2023-03-30/functions/{name}/invocations"
            for h in hosts]


def observed(props: Mapping[str, Any], records: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """Outputs as the hosts report them. Where hosts disagree, the value that differs from the recorded one wins,
    so the refreshed outputs differ from the inputs and the next `up` puts every host back in line."""
    outs = dict(props)
    for key in SPEC_KEYS + ("code_checksum",):
        recorded = normalized(props, key) if key in FunctionModel.model_fields else props.get(key)
        seen = [r.get(key) for _, r in sorted(records.items())]
        drifted = [v for v in seen if (normalized({key: v}, key) if key in FunctionModel.model_fields else v)
                   != recorded]
        if drifted:
            outs[key] = drifted[0]
        elif seen:
            outs[key] = seen[0] if seen[0] is not None else props.get(key)
    if records:
        outs["created_time"] = min(r.get("created_time") or "" for r in records.values()) or props.get("created_time")
        outs["last_modified_time"] = (max(r.get("last_modified_time") or "" for r in records.values())
                                      or props.get("last_modified_time"))
    outs["hosts"] = sorted(records)
    outs["state"] = "Active" if records else "Inactive"
    return outs


def inputs_of(props: Mapping[str, Any]) -> dict[str, Any]:
    return {k: props.get(k) for k in INPUT_KEYS if k in props}


def output_defaults() -> dict[str, Optional[Any]]:
    return {k: None for k in OUTPUT_KEYS}
