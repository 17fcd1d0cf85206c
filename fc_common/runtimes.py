"""Which image each built-in runtime runs in, unless a Fleet's ``runtime_images`` says otherwise: the agent starts
instances from it, and the Fleet ships the project's tarballs of exactly these images to hosts that lack them.
Standard library only."""

from __future__ import annotations

DEFAULT_RUNTIME_IMAGES = {
    "python3.10": "fc-runtime/python3.11:latest",
    "python3.11": "fc-runtime/python3.11:latest",
    "python3.12": "fc-runtime/python3.11:latest",
    # Debian 12 with python3: what FC's custom.debian12 offers a user's own HTTP server.
    "custom": "fc-runtime/python3.11:latest",
    "custom.debian12": "fc-runtime/python3.11:latest",
}
