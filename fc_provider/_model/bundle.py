"""The agent bundle: the ``runtime_agent`` package, the ``fc_common`` rules it shares with the provider, and its
pure-Python dependencies, vendored from the environment the provider runs in, so hosts need only ``python3`` (no
package index, no container registry).
Its checksum is the agent version the Fleet resource diffs on."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from .archive import Package, pack_trees

VENDORED = ("docker", "requests", "urllib3", "idna", "certifi", "charset_normalizer", "prometheus_client")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"cannot bundle the agent: package {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.lru_cache(maxsize=1)
def agent_bundle() -> Package:
    trees = [(_package_dir("runtime_agent"), "runtime_agent"), (_package_dir("fc_common"), "fc_common")]
    trees += [(_package_dir(name), name) for name in VENDORED]
    # Compiled extensions (charset_normalizer's optional speedups) are left out: each is built for one Python
    # minor version, and without them every vendored package runs as pure Python on any host Python 3.10+.
    return pack_trees(trees, skip_suffixes=(".pyc", ".so"))


def agent_version() -> str:
    """Short id of the bundle; one bundle serves every host Python from 3.10 on."""
    return agent_bundle().checksum[:16]
