"""fc_lab: a local lab fleet of isolated "hosts" (netns + private mount ns + sshd + dockerd) on one machine.

    from fc_lab import Lab
    fleet = Lab().up(3)          # writes $FC_LAB_DIR/fleet.json (default /var/lib/fc-lab)
"""

from ._errors import HostStartError, ImageBuildError, LabError
from ._host import HostStatus
from ._images import RUNTIME_IMAGE, RUNTIME_TAG, build_runtime_image, load_runtime_image
from ._lab import DEFAULT_STATE_DIR, Lab, default_state_dir

__all__ = [
    "DEFAULT_STATE_DIR",
    "HostStartError",
    "HostStatus",
    "ImageBuildError",
    "Lab",
    "LabError",
    "RUNTIME_IMAGE",
    "RUNTIME_TAG",
    "build_runtime_image",
    "default_state_dir",
    "load_runtime_image",
]
