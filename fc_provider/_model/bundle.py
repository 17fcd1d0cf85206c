"""The agent bundle: the ``runtime_agent`` package, the ``fc_common`` rules it shares with the provider, and its
pure-Python dependencies, vendored from the environment the provider runs in, so hosts need only ``python3`` (no
package index, no container registry).
Its checksum is the agent version the Fleet resource diffs on."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

from .archive import Package, pack_trees

VENDORED = ("docker", "requests", "urllib3", "idna", "certifi", "charset_normalizer", "prometheus_client",
            "cronsim")
# Single-file modules: nvidia-ml-py is one file, pynvml.py (the agent's NVML inventory; pure Python, ctypes).
VENDORED_MODULES = ("pynvml",)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"cannot bundle the agent: package {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.lru_cache(maxsize=1)
def agent_bundle() -> Package:
    trees = [(_package_dir("runtime_agent"), "runtime_agent"), (_package_dir("fc_common"), "fc_common")]
    trees += [(_package_dir(name), name) for name in VENDORED]
    for name in VENDORED_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise RuntimeError(f"cannot bundle the agent: module {name} is not installed")
        trees.append((Path(spec.origin), f"{name}.py"))
    return pack_trees(trees)


def agent_version() -> str:
    """Short id of the bundle, plus the Python minor version it was vendored for."""
    return f"{agent_bundle().checksum[:16]}-py{sys.version_info.major}.{sys.version_info.minor}"
