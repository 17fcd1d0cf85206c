"""Runtime image tarballs the Fleet ships to hosts whose engine lacks them: a host with only Docker and python3
runs every built-in runtime without a registry. The project builds them (``fc-lab images``) into
``$FC_CACHE_DIR/images/fc-runtime-<name>.tar`` (default ``~/.cache/fc-provider``), each the image
``fc-runtime/<name>:latest``. Each tarball is content-addressed by its sha256 (an input of the Fleet, so a rebuilt
image ships again); the digest is kept beside the tarball, keyed by its size and mtime, so a program run does not
hash 100 MB files every time."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from fc_common.runtimes import DEFAULT_RUNTIME_IMAGES

PREFIX, SUFFIX = "fc-runtime-", ".tar"


def cache_dir() -> Path:
    base = os.environ.get("FC_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "fc-provider") / "images"


def project_tarballs(runtime_images: Mapping[str, str] | None = None) -> dict[str, str]:
    """Image reference -> tarball path of each runtime image the fleet's runtimes use (the defaults of
    fc_common.runtimes, overridden by ``runtime_images``) that the project has built on this machine."""
    folder = cache_dir()
    used = set({**DEFAULT_RUNTIME_IMAGES, **(runtime_images or {})}.values())
    found = {}
    for ref in sorted(used):
        name, _, tag = ref.partition(":")
        if name.startswith("fc-runtime/") and tag in ("", "latest"):
            tar = folder / f"{PREFIX}{name[len('fc-runtime/'):]}{SUFFIX}"
            if tar.is_file():
                found[f"{name}:latest"] = str(tar)
    return found


def digest(path: str | os.PathLike[str]) -> str:
    tar = Path(path)
    stat = tar.stat()
    sidecar = tar.with_name(f".{tar.name}.sha256")
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        cached = json.loads(sidecar.read_text())
        if cached.get("key") == key:
            return str(cached["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    h = hashlib.sha256()
    with tar.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    try:
        sidecar.write_text(json.dumps({"key": key, "sha256": h.hexdigest()}))
    except OSError:
        pass  # a read-only cache: hash again next time
    return h.hexdigest()


def described(tarballs: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """What the Fleet carries per image: {ref: {"path", "sha256"}}; a missing file is reported by check."""
    out: dict[str, dict[str, Any]] = {}
    for ref, path in sorted(tarballs.items()):
        try:
            out[ref] = {"path": str(path), "sha256": digest(path)}
        except OSError as exc:
            out[ref] = {"path": str(path), "sha256": "", "error": f"cannot read {path}: {exc.strerror or exc}"}
    return out
