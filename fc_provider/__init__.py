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
from .custom_domain import (
    CertConfigArgs,
    CustomDomain,
    CustomDomainArgs,
    FrontDoorArgs,
    PathConfigArgs,
    RouteConfigArgs,
    TlsConfigArgs,
)
from .fleet import Fleet, FleetArgs, HostArgs
from .function import Function, FunctionArgs, FunctionExists

__all__ = [
    "AgentAPIError",
    "AuthenticationFailed",
    "CertConfigArgs",
    "CustomContainerConfigArgs",
    "CustomDnsArgs",
    "CustomDomain",
    "CustomDomainArgs",
    "CustomRuntimeConfigArgs",
    "DeployLocked",
    "DnsOptionArgs",
    "FcProviderError",
    "Fleet",
    "FleetArgs",
    "FleetOperationError",
    "FrontDoorArgs",
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
    "PathConfigArgs",
    "PlacementArgs",
    "PlacementError",
    "RemoteCommandFailed",
    "RouteConfigArgs",
    "TlsConfigArgs",
]
