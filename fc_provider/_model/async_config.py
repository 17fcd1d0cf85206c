"""The AsyncInvokeConfig resource's properties: validation at preview (pydantic, FC's ranges from
``fc_common.asyncrules``), normalised values with FC's defaults, and what the agent receives. No host is contacted
here."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fc_common import asyncrules as rules

from .validation import FUNCTION_NAME

QUALIFIER = r"^(LATEST|[0-9]+|[A-Za-z_][A-Za-z0-9_-]{0,127})$"
CONFIG_KEYS = rules.CONFIG_KEYS
DEFAULTS = {"max_async_retry_attempts": rules.DEFAULT_RETRY_ATTEMPTS,
            "max_async_event_age_in_seconds": rules.DEFAULT_EVENT_AGE, "async_task": False,
            "destination_config": None}


class _Destination(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destination: str

    @field_validator("destination")
    @classmethod
    def _destination(cls, value: str) -> str:
        problem = rules.destination_problem("destination", value)
        if problem:
            raise ValueError(problem)
        return value


class _DestinationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on_success: Optional[_Destination] = None
    on_failure: Optional[_Destination] = None


class AsyncInvokeConfigModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    function_name: str = Field(pattern=FUNCTION_NAME.pattern)
    qualifier: str = Field(default="LATEST", pattern=QUALIFIER)
    max_async_retry_attempts: Optional[int] = Field(default=None, ge=rules.RETRY_ATTEMPTS_RANGE[0],
                                                    le=rules.RETRY_ATTEMPTS_RANGE[1])
    max_async_event_age_in_seconds: Optional[int] = Field(default=None, ge=rules.EVENT_AGE_RANGE[0],
                                                          le=rules.EVENT_AGE_RANGE[1])
    async_task: Optional[bool] = None
    destination_config: Optional[_DestinationConfig] = None

    @model_validator(mode="after")
    def _not_itself(self) -> "AsyncInvokeConfigModel":
        for key in ("on_success", "on_failure"):
            target = getattr(self.destination_config, key, None) if self.destination_config else None
            if target is not None and rules.destination_function(target.destination) == self.function_name:
                raise ValueError(f"destination_config: {key}.destination names function {self.function_name} "
                                 f"itself; a function cannot be its own destination (each event would beget another)")
        return self


def agent_config(props: Mapping[str, Any]) -> dict[str, Any]:
    """The config the agent stores, with FC's defaults filled in (so a diff compares like with like)."""
    out = {k: props.get(k) if props.get(k) is not None else DEFAULTS[k] for k in CONFIG_KEYS}
    destinations = out["destination_config"]
    if destinations:
        kept = {k: {"destination": v["destination"]} for k, v in destinations.items() if v}
        out["destination_config"] = kept or None
    if out["destination_config"] is None:
        del out["destination_config"]
    return out
