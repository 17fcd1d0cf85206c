"""Exit codes of `fc`, and the errors that carry them (each printed as one line)."""

from __future__ import annotations

from .._errors import FcProviderError

EXIT_OK = 0
EXIT_FUNCTION_ERROR = 1  # the function ran and failed (x-fc-error-type), or nothing was found
EXIT_USAGE = 2           # bad arguments, fleet file or stack (argparse uses 2 too)
EXIT_FLEET = 3           # a host or agent failed (unreachable, refused, platform error)


class UsageError(FcProviderError):
    exit_code = EXIT_USAGE


class NotFound(FcProviderError):
    exit_code = EXIT_FUNCTION_ERROR
