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
    DnsOptionArgs,
    HealthCheckConfigArgs,
    HostCapacityArgs,
    InstanceLifecycleConfigArgs,
    LifecycleHookArgs,
    LogConfigArgs,
    PlacementArgs,
)
from ._model.placement import PlacementError
from .fleet import Fleet, FleetArgs, HostArgs
from .function import Function, FunctionArgs, FunctionExists
from .trigger import (
    HttpTriggerConfigArgs,
    JwtAuthConfigArgs,
    OssKeyFilterArgs,
    OssSourceArgs,
    OssTriggerConfigArgs,
    TimerTriggerConfigArgs,
    Trigger,
    TriggerArgs,
)

__all__ = [
    "AgentAPIError",
    "AuthenticationFailed",
    "CustomContainerConfigArgs",
    "CustomDnsArgs",
    "CustomRuntimeConfigArgs",
    "DeployLocked",
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
    "HttpTriggerConfigArgs",
    "InstanceLifecycleConfigArgs",
    "JwtAuthConfigArgs",
    "LifecycleHookArgs",
    "LogConfigArgs",
    "OssKeyFilterArgs",
    "OssSourceArgs",
    "OssTriggerConfigArgs",
    "PlacementArgs",
    "PlacementError",
    "RemoteCommandFailed",
    "TimerTriggerConfigArgs",
    "Trigger",
    "TriggerArgs",
]
