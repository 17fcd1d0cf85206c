"""Inputs of the FunctionVersion, Alias and LayerVersion resources, validated with pydantic like a function's
(property and rule named; values unknown at preview are checked once known)."""

from __future__ import annotations

import re
from typing import Any, Mapping

from pydantic import Field, field_validator, model_validator

from fc_common import arns

from .validation import FUNCTION_NAME, RUNTIMES, _Strict, has_unknown

# FC's alias rule: letters, digits, '_' and '-', not starting with a digit or '-', 1-128 characters, not LATEST.
ALIAS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")


def version_text(value: Any) -> Any:
    """A version id as FC writes it, a string of digits: Pulumi may hand an integer over as a float (1.0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


class FunctionVersionModel(_Strict):
    function_name: str
    description: str = Field(default="", max_length=256)

    @field_validator("function_name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not FUNCTION_NAME.match(v):
            raise ValueError("must be the name of a function (1-64 letters, digits, '_' or '-')")
        return v


class AliasModel(_Strict):
    function_name: str
    alias_name: str
    version_id: str = Field(pattern=r"^[1-9][0-9]*$")
    additional_version_weight: dict[str, float] = Field(default_factory=dict)
    description: str = Field(default="", max_length=256)

    @field_validator("version_id", mode="before")
    @classmethod
    def _version(cls, v: Any) -> Any:
        if v == "LATEST":
            raise ValueError("an alias points at a published version id (\"1\", \"2\", ...), never LATEST")
        return version_text(v)

    @field_validator("alias_name")
    @classmethod
    def _alias(cls, v: str) -> str:
        if not ALIAS_NAME.match(v) or v == "LATEST":
            raise ValueError("must be 1-128 letters, digits, '_' or '-', not starting with a digit or '-', and not "
                             "LATEST")
        return v

    @field_validator("additional_version_weight", mode="before")
    @classmethod
    def _weights(cls, v: Any) -> Any:
        if not isinstance(v, Mapping):
            return v
        if len(v) > 1:
            raise ValueError(f"names {len(v)} versions; an alias sends traffic to at most one additional version")
        for key, weight in v.items():
            if not re.match(r"^[1-9][0-9]*$", str(key)):
                raise ValueError(f"key {key!r} must be a published version id (\"2\"), never LATEST")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
                raise ValueError(f"weight of version {key} must be a number from 0 to 1, got {weight!r}")
        return {str(k): float(w) for k, w in v.items()}

    @model_validator(mode="after")
    def _not_its_own(self) -> "AliasModel":
        if self.version_id in self.additional_version_weight:
            raise ValueError(f"additional_version_weight must not name the alias's own version {self.version_id}")
        return self


def alias_spec(props: Mapping[str, Any]) -> dict[str, Any]:
    """What the agent gets for an alias (PUT /v1/functions/{name}/aliases/{alias})."""
    model = AliasModel.model_validate({k: v for k, v in props.items() if k in AliasModel.model_fields
                                       and v is not None})
    return {"version_id": model.version_id, "additional_version_weight": model.additional_version_weight,
            "description": model.description}


class LayerVersionModel(_Strict):
    layer_name: str = Field(pattern=rf"^{arns.LAYER_NAME}$")
    compatible_runtime: list[str] = Field(default_factory=list)
    description: str = Field(default="", max_length=256)
    license: str = Field(default="", max_length=512)
    code_checksum: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    code_error: str | None = None

    @field_validator("compatible_runtime")
    @classmethod
    def _runtimes(cls, v: list[str]) -> list[str]:
        unknown = [r for r in v if r not in RUNTIMES or r == "custom-container"]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} is not a runtime a layer can serve; one of "
                             f"{', '.join(r for r in RUNTIMES if r != 'custom-container')}")
        if len(set(v)) != len(v):
            raise ValueError("runtimes must not repeat")
        return v

    @model_validator(mode="after")
    def _code(self) -> "LayerVersionModel":
        if self.code_error is not None:
            raise ValueError(f"code: {self.code_error}")
        if self.code_checksum is None:
            raise ValueError("code is required: a folder or archive whose content goes to /opt")
        return self


def layer_failures(layers: Any, runtime: Any, compatible: Any) -> list[str]:
    """Rules of a function's ``layers`` (ARNs) that need no host: at most 5, each an ARN of this fleet, no repeats,
    and each layer whose compatible_runtime is known at preview (``compatible``, aligned with ``layers``; None
    where only the ARN is known) compatible with ``runtime``."""
    failures: list[str] = []
    if not isinstance(layers, list):
        return failures
    if len(layers) > 5:
        failures.append(f"layers: lists {len(layers)} layers; a function takes at most 5")
    for index, arn in enumerate(layers):
        if isinstance(arn, str) and not arns.LAYER_ARN.match(arn) and not has_unknown(arn):
            kind = "a layer of another region or account" if arns.ANY_LAYER_ARN.match(arn) else "not a layer ARN"
            failures.append(f"layers[{index}]: {arn!r} is {kind}; this fleet's layers are "
                            f"acs:fc:{arns.REGION}:{arns.ACCOUNT}:layers/NAME/versions/N")
    known = [a for a in layers if isinstance(a, str) and not has_unknown(a)]
    if len(set(known)) != len(known):
        failures.append("layers: a layer must not be listed twice")
    for index, runtimes in enumerate(compatible if isinstance(compatible, list) else []):
        if runtimes and isinstance(runtime, str) and not has_unknown(runtime) and runtime not in runtimes:
            failures.append(f"layers[{index}]: the layer is compatible with {', '.join(runtimes)}, not {runtime}")
    return failures
