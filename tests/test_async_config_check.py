"""The AsyncInvokeConfig resource's checks at preview (no host): FC's ranges and destination forms, each failure
naming its property; values unknown at preview wait; typed Args and dicts reach the provider alike."""

from __future__ import annotations

import fc_provider as fc
from fc_provider._inputs import to_input
from fc_provider._model.async_config import AsyncInvokeConfigModel, agent_config
from fc_provider._model.validation import UNKNOWN, check


def _failures(**props: object) -> dict[str, str]:
    return dict(check(AsyncInvokeConfigModel, {"function_name": "jobs", **props}))


def test_out_of_range_values_and_bad_destinations_name_their_property() -> None:
    assert _failures(max_async_retry_attempts=9)["max_async_retry_attempts"].endswith("less than or equal to 8")
    assert "greater than or equal to 1" in _failures(max_async_event_age_in_seconds=0)["max_async_event_age_in_seconds"]
    assert "604800" in _failures(max_async_event_age_in_seconds=604801)["max_async_event_age_in_seconds"]
    assert "qualifier" in _failures(qualifier="bad qualifier!")
    for destination, rule in (("acs:mns:local:fleet:/queues/q", "not a function ARN"),
                              ("acs:fc:cn-hangzhou:123:functions/x", "region 'cn-hangzhou'"),
                              ("ftp://host/x", "neither a function ARN nor an http(s) URL"),
                              ("acs:fc:local:fleet:functions/jobs", "its own destination")):
        failures = _failures(destination_config={"on_failure": {"destination": destination}})
        assert rule in failures["destination_config"], (destination, failures)
    assert _failures(destination_config={"on_success": {"destination": "https://hooks.example/x"}}) == {}
    assert _failures(max_async_retry_attempts=0, max_async_event_age_in_seconds=604800, async_task=True) == {}


def test_unknown_values_wait_until_they_are_known() -> None:
    assert _failures(max_async_retry_attempts=UNKNOWN, destination_config=UNKNOWN) == {}


def test_typed_destinations_give_the_same_props_as_dicts_and_defaults_are_fcs() -> None:
    typed = fc.AsyncInvokeConfigArgs(destination_config=fc.DestinationConfigArgs(
        on_success=fc.DestinationArgs(destination="acs:fc:local:fleet:functions/sink")))
    assert to_input(typed.destination_config) == {"on_success": {"destination": "acs:fc:local:fleet:functions/sink"}}
    assert agent_config({}) == {"max_async_retry_attempts": 3, "max_async_event_age_in_seconds": 86400,
                                "async_task": False}
