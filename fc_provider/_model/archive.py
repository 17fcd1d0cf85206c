"""Deterministic tar.gz packages: the same files always give the same bytes (sorted entries, zeroed times and
owners, a fixed gzip header), so a package's sha256 identifies its content and drives diffs and uploads."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

SKIP_NAMES = {"__pycache__", ".git", ".DS_Store"}


@dataclass(frozen=True)
class Package:
    data: bytes

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)


def _add(tar: tarfile.TarFile, source: Path, arcname: str) -> None:
    info = tarfile.TarInfo(arcname)
    st = source.lstat()
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if source.is_symlink():
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(source)
        info.mode = 0o777
        tar.addfile(info)
    elif source.is_dir():
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
    else:
        info.mode = 0o755 if st.st_mode & 0o100 else 0o644
        info.size = st.st_size
        with source.open("rb") as f:
            tar.addfile(info, f)


def _entries(trees: list[tuple[Path, str]], exclude: Callable[[str], bool] | None,
             skip_suffixes: tuple[str, ...]) -> Iterator[tuple[str, Path]]:
    """(name in the archive, source) of every entry ``pack_trees`` packs, in its order."""
    for root, prefix in trees:
        if root.is_file():
            yield prefix, root
            continue
        entries: list[tuple[str, Path]] = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_NAMES)
            for name in dirnames + sorted(f for f in filenames if f not in SKIP_NAMES):
                if name.endswith(skip_suffixes):
                    continue
                full = Path(dirpath) / name
                rel = full.relative_to(root).as_posix()
                arcname = f"{prefix}/{rel}" if prefix else rel
                if exclude is None or not exclude(arcname):
                    entries.append((arcname, full))
        if prefix:
            yield prefix, root
        yield from sorted(entries)


def pack_trees(trees: list[tuple[Path, str]], *, exclude: Callable[[str], bool] | None = None,
               skip_suffixes: tuple[str, ...] = (".pyc",)) -> Package:
    """Packs each (folder, prefix-in-archive) pair; an empty prefix puts the folder's content at the root. A
    single file is packed under its prefix as the name. Files ending in ``skip_suffixes`` and entries for which
    ``exclude(arcname)`` holds are left out."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6, filename="") as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for arcname, source in _entries(trees, exclude, skip_suffixes):
                _add(tar, source, arcname)
    return Package(buf.getvalue())


def fingerprint(trees: list[tuple[Path, str]], *, exclude: Callable[[str], bool] | None = None,
                skip_suffixes: tuple[str, ...] = (".pyc",)) -> str:
    """The sha256 of what ``pack_trees`` would pack (each entry's name, kind, mode, link or content), without
    building the archive: compressing is what costs (the agent bundle, at every program run with a Fleet: 0.5-2 s
    packed on a busy 2-core machine, 0.2 s fingerprinted)."""
    digest = hashlib.sha256()
    for arcname, source in _entries(trees, exclude, skip_suffixes):
        if source.is_symlink():
            kind, body = b"l", os.readlink(source).encode()
        elif source.is_dir():
            kind, body = b"d", b""
        else:
            kind, body = (b"x" if source.lstat().st_mode & 0o100 else b"f"), source.read_bytes()
        name = arcname.encode()
        digest.update(b"%s%d:%s%d:" % (kind, len(name), name, len(body)))
        digest.update(body)
    return digest.hexdigest()


def pack_code(path: str | os.PathLike[str]) -> Package:
    """A function's code: a folder, or a .zip/.tar.gz/.tgz archive file (repacked deterministically)."""
    src = Path(path)
    if src.is_dir():
        return pack_trees([(src, "")])
    if not src.exists():
        raise FileNotFoundError(f"code path {src} does not exist")
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory() as tmp:
        if zipfile.is_zipfile(src):
            with zipfile.ZipFile(src) as zf:
                for name in zf.namelist():  # extractall would drop the '..' silently: refuse instead (zip-slip)
                    if name.startswith("/") or ".." in Path(name.replace("\\", "/")).parts:
                        raise ValueError(f"archive {src} has an entry escaping its root (zip-slip): {name!r}")
                zf.extractall(tmp)
        elif tarfile.is_tarfile(src):
            with tarfile.open(src) as tf:
                try:
                    tf.extractall(tmp, filter="data")
                except tarfile.FilterError as exc:
                    raise ValueError(f"archive {src} has an entry escaping its root (zip-slip): {exc}") from exc
        else:
            raise ValueError(f"code path {src} is neither a folder nor a zip or tar archive")
        return pack_trees([(Path(tmp), "")])
