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
    GpuConfigArgs,
    HealthCheckConfigArgs,
    HostCapacityArgs,
    HostGpusArgs,
    InstanceLifecycleConfigArgs,
    LifecycleHookArgs,
    LogConfigArgs,
    PlacementArgs,
    SimulatedGpuArgs,
)
from ._model.placement import PlacementError
from .fleet import Fleet, FleetArgs, HostArgs
from .function import Function, FunctionArgs, FunctionExists
from .gpu_pool import GpuPool, GpuPoolArgs
from .provision_config import ProvisionConfig, ProvisionConfigArgs, ScheduledActionArgs, TargetTrackingPolicyArgs

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
    "GpuConfigArgs",
    "GpuPool",
    "GpuPoolArgs",
    "HealthCheckConfigArgs",
    "HostArgs",
    "HostCapacityArgs",
    "HostError",
    "HostGpusArgs",
    "HostKeyMismatch",
    "HostUnreachable",
    "InstanceLifecycleConfigArgs",
    "LifecycleHookArgs",
    "LogConfigArgs",
    "PlacementArgs",
    "PlacementError",
    "ProvisionConfig",
    "ProvisionConfigArgs",
    "RemoteCommandFailed",
    "ScheduledActionArgs",
    "SimulatedGpuArgs",
    "TargetTrackingPolicyArgs",
]
