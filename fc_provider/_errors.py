"""The exceptions fc_provider raises. Errors of paramiko, sockets and HTTP are translated into these at the
boundary, so users never see a library's exception.

    FcProviderError
    ├── HostError                 an operation on one named host failed
    │   ├── HostUnreachable       cannot connect (network, refused, timed out)
    │   ├── HostKeyMismatch       the host's SSH key is not the one the fleet declares
    │   ├── AuthenticationFailed  the host refused our key
    │   ├── RemoteCommandFailed   a command on the host exited non-zero
    │   ├── AgentAPIError         the runtime agent answered with an error (carries FC's Code and Message)
    │   └── DeployLocked          another deploy holds the host's deploy lock (carries the holder)
    └── FleetOperationError       several hosts failed; carries each host's error
"""

from __future__ import annotations

import functools
import sys
import traceback
from typing import Any, Callable, TypeVar


class FcProviderError(Exception):
    pass


class HostError(FcProviderError):
    def __init__(self, host: str, message: str) -> None:
        super().__init__(f"host {host}: {message}")
        self.host = host
        self.reason = message


class HostUnreachable(HostError):
    pass


class HostKeyMismatch(HostError):
    pass


class AuthenticationFailed(HostError):
    pass


class RemoteCommandFailed(HostError):
    def __init__(self, host: str, argv: list[str], exit_status: int, stderr: str) -> None:
        super().__init__(host, f"`{' '.join(argv)[:200]}` exited {exit_status}: {stderr.strip()[-500:]}")
        self.exit_status = exit_status
        self.stderr = stderr


class AgentAPIError(HostError):
    def __init__(self, host: str, status: int, code: str, message: str) -> None:
        super().__init__(host, f"agent answered {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class DeployLocked(HostError):
    def __init__(self, host: str, holder: str, waited: float) -> None:
        super().__init__(host, f"deploy lock held by {holder}; gave up after waiting {waited:.0f}s "
                               "(FleetArgs.lock_timeout_seconds). If that deploy is no longer running, break the lock: "
                               "fc_provider._remote.lock.break_lock(connection, host), or on the host "
                               "`rm -rf /var/lib/fc-agent/deploy.lock`")
        self.holder = holder
        self.waited = waited


class FleetOperationError(FcProviderError):
    def __init__(self, operation: str, errors: dict[str, Exception], succeeded: list[str],
                 not_attempted: list[str] | None = None) -> None:
        lines = [f"{operation} failed on {len(errors)} host(s)"]
        lines += [f"  - {err}" for _, err in sorted(errors.items())]
        if succeeded:
            lines.append(f"  (succeeded on: {', '.join(sorted(succeeded))})")
        if not_attempted:
            lines.append(f"  (stopped before: {', '.join(not_attempted)})")
        super().__init__("\n".join(lines))
        self.errors = errors
        self.succeeded = succeeded
        self.not_attempted = list(not_attempted or [])


F = TypeVar("F", bound=Callable[..., Any])


def brief_errors(method: F) -> F:
    """For provider methods. Pulumi's dynamic provider prints the traceback of any error; ours are complete
    messages, so they are raised afresh, without the frames below the provider method and without the chain (and
    reported as the message alone: ``_report_our_errors_briefly``)."""

    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except FcProviderError as exc:
            brief = exc
        raise brief.with_traceback(None) from None

    return run  # type: ignore[return-value]


class _BriefTracebacks:
    """Pulumi's dynamic provider host (``python -m pulumi.dynamic``) answers the engine with
    ``traceback.format_exc()`` for every exception a provider method raises (its ``_abort_with_traceback``), so a
    user would read "Traceback (most recent call last)" and the host's own frames above each of our messages. This
    stands in for the ``traceback`` module in that host's namespace only: one of our errors is reported as its
    message, anything else (a bug) keeps its whole traceback."""

    def __getattr__(self, name: str) -> Any:
        return getattr(traceback, name)

    @staticmethod
    def format_exc(*args: Any, **kwargs: Any) -> str:
        error = sys.exc_info()[1]
        if isinstance(error, FcProviderError):
            return str(error)
        return traceback.format_exc(*args, **kwargs)


def _report_our_errors_briefly() -> None:
    host = sys.modules.get("__main__")
    spec = getattr(host, "__spec__", None)
    if spec is not None and spec.name == "pulumi.dynamic.__main__" and hasattr(host, "traceback"):
        host.traceback = _BriefTracebacks()  # type: ignore[union-attr]


_report_our_errors_briefly()  # imported when the host unpickles one of our providers, before it runs a method
