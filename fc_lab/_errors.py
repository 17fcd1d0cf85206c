"""The one exception tree of fc_lab.

    LabError                 anything the lab could not do
    ├── ImageBuildError      building or importing the runtime image failed
    └── HostStartError       a host's sshd or dockerd did not come up

Errors from subprocess, docker or the OS are translated at the boundary
(``raise LabError(...) from exc``) so callers only ever catch ``LabError``.
"""

from __future__ import annotations


class LabError(Exception):
    """The lab could not do what was asked."""


class ImageBuildError(LabError):
    """Building or importing the runtime image failed."""


class HostStartError(LabError):
    """A host's sshd or dockerd did not become healthy in time."""
