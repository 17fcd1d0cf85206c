"""fc-provider: Function Compute on your own servers, declared as Pulumi resources.

    import fc_provider as fc
    fleet = fc.Fleet("fleet", fc.FleetArgs.from_fleet_file("/var/lib/fc-lab/fleet.json"))
    fn = fc.Function("hello", fc.FunctionArgs(code="./app", handler="index.handler"), fleet=fleet)
"""

from ._errors import (
    AgentAPIError,
    AuthenticationFailed,
    DeployLocked,
    FcProviderError,
    FleetOperationError,
    HostError,
    HostKeyMismatch,
    HostUnreachable,
    RemoteCommandFailed,
)
from ._inputs import (
    CustomContainerConfigArgs,
    CustomDnsArgs,
    CustomRuntimeConfigArgs,
    DestinationArgs,
    DestinationConfigArgs,
    DnsOptionArgs,
    HealthCheckConfigArgs,
    HostCapacityArgs,
    InstanceLifecycleConfigArgs,
    LifecycleHookArgs,
    LogConfigArgs,
    PlacementArgs,
)
from ._model.placement import PlacementError
from .async_invoke_config import AsyncInvokeConfig, AsyncInvokeConfigArgs
from .fleet import Fleet, FleetArgs, HostArgs
from .function import Function, FunctionArgs, FunctionExists

__all__ = [
    "AgentAPIError",
    "AsyncInvokeConfig",
    "AsyncInvokeConfigArgs",
    "AuthenticationFailed",
    "CustomContainerConfigArgs",
    "CustomDnsArgs",
    "CustomRuntimeConfigArgs",
    "DeployLocked",
    "DestinationArgs",
    "DestinationConfigArgs",
    "DnsOptionArgs",
    "FcProviderError",
    "Fleet",
    "FleetArgs",
    "FleetOperationError",
    "Function",
    "FunctionArgs",
    "FunctionExists",
    "HealthCheckConfigArgs",
    "HostArgs",
    "HostCapacityArgs",
    "HostError",
    "HostKeyMismatch",
    "HostUnreachable",
    "InstanceLifecycleConfigArgs",
    "LifecycleHookArgs",
    "LogConfigArgs",
    "PlacementArgs",
    "PlacementError",
    "RemoteCommandFailed",
]
