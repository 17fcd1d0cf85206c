"""Inputs of the FunctionVersion and Alias resources, validated with pydantic like a function's (property and rule
named; values unknown at preview are checked once known)."""

from __future__ import annotations

import re
from typing import Any, Mapping

from pydantic import Field, field_validator, model_validator

from .validation import FUNCTION_NAME, _Strict

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
