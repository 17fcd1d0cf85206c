"""A function's ``code`` input: a folder or archive path, a ``pulumi.FileArchive``, or a ``pulumi.AssetArchive`` of
``StringAsset``/``FileAsset``/``FileArchive`` entries. The program turns it into a plain description (stored in
the state, never diffed) plus the package's sha256 (diffed); the provider packs the description again at deploy
time and refuses to upload if the bytes changed in between."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Optional

import pulumi

from .archive import Package, pack_code, pack_trees


class CodeError(ValueError):
    """The code input cannot be packed; the message says why (reported as a check failure on ``code``)."""


def describe(code: Any) -> Optional[dict[str, Any]]:
    """The JSON-able description of a code input; None when there is no code (custom-container)."""
    if code is None:
        return None
    if isinstance(code, pulumi.AssetArchive):
        return {"assets": {name: _entry(name, value) for name, value in sorted(code.assets.items())}}
    if isinstance(code, pulumi.FileArchive):
        return {"path": os.path.abspath(code.path)}
    if isinstance(code, (pulumi.Archive, pulumi.Asset)):
        raise CodeError(f"{type(code).__name__} is not supported; use a folder, an archive file, FileArchive or "
                        "AssetArchive of StringAsset/FileAsset")
    return {"path": os.path.abspath(str(code))}


def _entry(name: str, value: Any) -> dict[str, Any]:
    if not name or name.startswith("/") or ".." in Path(name).parts:
        raise CodeError(f"AssetArchive entry {name!r} must be a relative path inside the package")
    if isinstance(value, pulumi.StringAsset):
        return {"text": value.text}
    if isinstance(value, pulumi.FileAsset):
        return {"file": os.path.abspath(str(value.path))}
    if isinstance(value, pulumi.FileArchive):
        return {"archive": os.path.abspath(value.path)}
    raise CodeError(f"AssetArchive entry {name!r}: {type(value).__name__} is not supported (StringAsset, FileAsset "
                    "or FileArchive)")


def pack(description: dict[str, Any]) -> Package:
    """The deterministic package of a description: the same content always gives the same bytes."""
    try:
        if "path" in description:
            return pack_code(description["path"])
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for name, entry in description["assets"].items():
                target = root / name
                target.parent.mkdir(parents=True, exist_ok=True)
                if "text" in entry:
                    target.write_text(entry["text"])
                    target.chmod(0o644)
                elif "file" in entry:
                    shutil.copyfile(entry["file"], target)
                    target.chmod(0o755 if os.stat(entry["file"]).st_mode & 0o100 else 0o644)
                else:
                    _unpack_into(entry["archive"], target)
            return pack_trees([(root, "")])
    except (OSError, ValueError) as exc:
        raise CodeError(str(exc)) from exc


def _unpack_into(source: str, target: Path) -> None:
    if os.path.isdir(source):
        shutil.copytree(source, target, symlinks=True)
        return
    with tarfile.open(fileobj=io.BytesIO(pack_code(source).data)) as tar:
        tar.extractall(target, filter="data")


def summarize(code: Any) -> dict[str, Any]:
    """What the program passes to the provider: the description, the checksum and size, or the reason it failed
    (a check failure on ``code`` rather than a traceback in the program)."""
    try:
        description = describe(code)
        if description is None:
            return {"code": None, "code_checksum": None, "code_size": 0, "code_error": None}
        package = pack(description)
    except CodeError as exc:
        return {"code": None, "code_checksum": None, "code_size": 0, "code_error": str(exc)}
    return {"code": description, "code_checksum": package.checksum, "code_size": package.size, "code_error": None}
