"""fc-provider: Function Compute on your own servers, declared as Pulumi resources.

    import fc_provider as fc
    fleet = fc.Fleet("fleet", fc.FleetArgs.from_fleet_file("/var/lib/fc-lab/fleet.json"))
    fn = fc.Function("hello", fc.FunctionArgs(code="./app", handler="index.handler"), fleet=fleet)
"""

from ._errors import (
    AgentAPIError,
    AuthenticationFailed,
    FcProviderError,
    FleetOperationError,
    HostError,
    HostKeyMismatch,
    HostUnreachable,
    RemoteCommandFailed,
)
from .fleet import Fleet, FleetArgs, HostArgs
from .function import Function, FunctionArgs

__all__ = [
    "AgentAPIError",
    "AuthenticationFailed",
    "FcProviderError",
    "Fleet",
    "FleetArgs",
    "FleetOperationError",
    "Function",
    "FunctionArgs",
    "HostArgs",
    "HostError",
    "HostKeyMismatch",
    "HostUnreachable",
    "RemoteCommandFailed",
]
