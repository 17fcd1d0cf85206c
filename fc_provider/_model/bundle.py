"""The agent bundle: the ``runtime_agent`` package, the ``fc_common`` rules it shares with the provider, and its
pure-Python dependencies, vendored from the environment the provider runs in, so hosts need only ``python3`` (no
package index, no container registry).
Its checksum is the agent version the Fleet resource diffs on."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from .archive import Package, fingerprint, pack_trees

VENDORED = ("docker", "requests", "urllib3", "idna", "certifi", "charset_normalizer", "prometheus_client",
            "cronsim",
            # nats-py, the JetStream client of the fleet-wide task queue (events/natsqueue.py)
            "nats",
            # boto3 for OSS triggers (listing a bucket): botocore ships every AWS service's model; only S3's and
            # the shared files are packed (BOTOCORE_DATA)
            "boto3", "botocore", "s3transfer", "jmespath", "dateutil")
# Single-file modules: six (dateutil needs it); pynvml, all of nvidia-ml-py (the agent's NVML inventory; pure
# Python, ctypes).
VENDORED_MODULES = ("six", "pynvml")
BOTOCORE_DATA = ("s3", "_retry.json", "endpoints.json", "partitions.json", "sdk-default-configuration.json")


def _excluded(arcname: str) -> bool:
    parts = arcname.split("/")
    return parts[:2] == ["botocore", "data"] and len(parts) > 2 and parts[2] not in BOTOCORE_DATA


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"cannot bundle the agent: package {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _trees() -> list[tuple[Path, str]]:
    trees = [(_package_dir("runtime_agent"), "runtime_agent"), (_package_dir("fc_common"), "fc_common")]
    trees += [(_package_dir(name), name) for name in VENDORED]
    return trees + [(_module_file(name), f"{name}.py") for name in VENDORED_MODULES]


# Compiled extensions (charset_normalizer's optional speedups) are left out: each is built for one Python minor
# version, and without them every vendored package runs as pure Python on any host Python 3.10+.
_SKIPPED = (".pyc", ".so")


@functools.lru_cache(maxsize=1)
def agent_bundle() -> Package:
    return pack_trees(_trees(), exclude=_excluded, skip_suffixes=_SKIPPED)


def _module_file(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"cannot bundle the agent: module {name} is not installed")
    return Path(spec.origin)


@functools.lru_cache(maxsize=1)
def agent_version() -> str:
    """Short id of the bundle's content; one bundle serves every host Python from 3.10 on. Every Fleet computes it
    at every program run (it is what the Fleet diffs on), so it hashes the files rather than packing them: the
    bundle itself is built only to install it."""
    return fingerprint(_trees(), exclude=_excluded, skip_suffixes=_SKIPPED)[:16]
