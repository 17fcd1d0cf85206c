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
