"""The runtime names both sides know. Each built-in runtime runs its own interpreter, in an image built offline
from the Debian release that ships it (fc_lab/_images.py); FC's names that no Debian release ships run only where
the fleet maps them to an image of the user's own (``runtime_images``), never silently on another version."""

from __future__ import annotations

PYTHON = ("python3.9", "python3.10", "python3.11", "python3.12", "python3.13")
NODEJS = ("nodejs18", "nodejs20")
BUILTIN = PYTHON + NODEJS  # handler(event, context): our runtime.py / runtime.js inside the image
CUSTOM = ("custom", "custom.debian12")  # the user's own HTTP server, from the code folder
CONTAINER = "custom-container"
ALL = BUILTIN + CUSTOM + (CONTAINER,)
# Images built here: Debian 11 ships Python 3.9, 12 Python 3.11 and Node.js 18, 13 Python 3.13 and Node.js 20.
BUILT_HERE = ("python3.9", "python3.11", "python3.13", "nodejs18", "nodejs20") + CUSTOM + (CONTAINER,)
NOT_BUILT = tuple(r for r in ALL if r not in BUILT_HERE)  # python3.10, python3.12

# The image each runtime runs in unless a Fleet's runtime_images says otherwise: the agent starts instances from it,
# and the Fleet ships the project's tarballs of these images to hosts that lack them (fc_provider/_model/images.py).
# No Debian release ships Python 3.10 or 3.12: those run only where runtime_images maps them to an image of the
# user's own, never silently on another version.
DEFAULT_RUNTIME_IMAGES = {
    "python3.9": "fc-runtime/python3.9:latest",  # Debian 11
    "python3.11": "fc-runtime/python3.11:latest",  # Debian 12
    "python3.13": "fc-runtime/python3.13:latest",  # Debian 13
    "nodejs18": "fc-runtime/nodejs18:latest",  # Debian 12
    "nodejs20": "fc-runtime/nodejs20:latest",  # Debian 13
    # Debian 12 with python3: what FC's custom.debian12 offers a user's own HTTP server.
    "custom": "fc-runtime/python3.11:latest",
    "custom.debian12": "fc-runtime/python3.11:latest",
}
