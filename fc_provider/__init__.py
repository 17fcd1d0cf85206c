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
    GpuConfigArgs,
    HealthCheckConfigArgs,
    HostCapacityArgs,
    HostGpusArgs,
    InstanceLifecycleConfigArgs,
    InvokePortGuardsArgs,
    LifecycleHookArgs,
    LogConfigArgs,
    NatsTaskQueueArgs,
    PlacementArgs,
    SimulatedGpuArgs,
    StemCellsArgs,
)
from ._model.placement import PlacementError
from .access_key import AccessKey, AccessKeyArgs, AccessKeyPolicyArgs
from .alias import Alias, AliasArgs
from .async_invoke_config import AsyncInvokeConfig, AsyncInvokeConfigArgs
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
from .gpu_pool import GpuPool, GpuPoolArgs
from .layer import LayerVersion, LayerVersionArgs
from .provision_config import ProvisionConfig, ProvisionConfigArgs, ScheduledActionArgs, TargetTrackingPolicyArgs
from .trigger import (
    CorsConfigArgs,
    HttpTriggerConfigArgs,
    JwtAuthConfigArgs,
    OssKeyFilterArgs,
    OssSourceArgs,
    OssTriggerConfigArgs,
    TimerTriggerConfigArgs,
    Trigger,
    TriggerArgs,
)
from .version import FunctionVersion, FunctionVersionArgs

__all__ = [
    "AccessKey",
    "AccessKeyArgs",
    "AccessKeyPolicyArgs",
    "AgentAPIError",
    "Alias",
    "AliasArgs",
    "AsyncInvokeConfig",
    "AsyncInvokeConfigArgs",
    "AuthenticationFailed",
    "CertConfigArgs",
    "CorsConfigArgs",
    "CustomContainerConfigArgs",
    "CustomDnsArgs",
    "CustomDomain",
    "CustomDomainArgs",
    "CustomRuntimeConfigArgs",
    "DeployLocked",
    "DestinationArgs",
    "DestinationConfigArgs",
    "DnsOptionArgs",
    "FcProviderError",
    "Fleet",
    "FleetArgs",
    "FleetOperationError",
    "FrontDoorArgs",
    "Function",
    "FunctionArgs",
    "FunctionExists",
    "FunctionVersion",
    "FunctionVersionArgs",
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
    "HttpTriggerConfigArgs",
    "InstanceLifecycleConfigArgs",
    "InvokePortGuardsArgs",
    "JwtAuthConfigArgs",
    "LayerVersion",
    "LayerVersionArgs",
    "LifecycleHookArgs",
    "LogConfigArgs",
    "NatsTaskQueueArgs",
    "OssKeyFilterArgs",
    "OssSourceArgs",
    "OssTriggerConfigArgs",
    "PathConfigArgs",
    "PlacementArgs",
    "PlacementError",
    "ProvisionConfig",
    "ProvisionConfigArgs",
    "RemoteCommandFailed",
    "RouteConfigArgs",
    "ScheduledActionArgs",
    "SimulatedGpuArgs",
    "StemCellsArgs",
    "TargetTrackingPolicyArgs",
    "TimerTriggerConfigArgs",
    "TlsConfigArgs",
    "Trigger",
    "TriggerArgs",
]
