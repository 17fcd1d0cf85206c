"""Code packages, content-addressed: ``code/<sha256>.tar.gz`` is uploaded by the provider (over SFTP), and unpacked
once into ``code/<sha256>/``, which instances mount read-only. The checksum is verified before unpacking."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path

from ..errors import BadRequest, Conflict


class CodeStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def archive_path(self, checksum: str) -> Path:
        return self.root / f"{checksum}.tar.gz"

    def unpacked(self, checksum: str) -> Path:
        """Returns the unpacked folder, unpacking (and verifying) the archive on first use."""
        _check_name(checksum)
        target = self.root / checksum
        if target.is_dir():
            return target
        archive = self.archive_path(checksum)
        if not archive.exists():
            raise Conflict(f"code package {checksum} was not uploaded to this host", code="CodeNotFound")
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if digest != checksum:
            archive.unlink()
            raise Conflict(f"code package {checksum} is corrupt (sha256 {digest}); upload it again",
                           code="CodeChecksumMismatch")
        staging = self.root / f".{checksum}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o755)
        try:
            with tarfile.open(archive) as tar:
                _safe_extract(tar, staging)
        except (BadRequest, tarfile.TarError) as exc:  # zip-slip: an entry escaping the package's root, or a link out
            shutil.rmtree(staging, ignore_errors=True)
            archive.unlink()
            raise BadRequest(f"package {checksum} is refused: {exc}", code="InvalidPackage") from exc
        for dirpath, dirnames, filenames in os.walk(staging):
            os.chmod(dirpath, 0o755)  # instances run as nobody and must read the code
            for f in filenames:
                p = os.path.join(dirpath, f)
                if not os.path.islink(p):
                    os.chmod(p, 0o755 if os.stat(p).st_mode & 0o100 else 0o644)
        staging.rename(target)
        return target

    def remove_unused(self, in_use: set[str]) -> None:
        for entry in self.root.iterdir():
            key = entry.name.removesuffix(".tar.gz")
            if key.startswith(".") or key in in_use:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _safe_extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Extracts only regular files, folders and links that stay inside ``dest``. tarfile's "data" filter does this
    where it exists; Pythons before 3.10.12 / 3.11.4 (Ubuntu 22.04's 3.10.6, Debian 12's 3.11.2) lack it, so the
    same rules are checked here first."""
    root = dest.resolve()
    for member in tar.getmembers():
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise BadRequest(f"code package entry {member.name!r} is not a file, folder or link")
        target = (root / member.name).resolve()
        if member.name.startswith("/") or not target.is_relative_to(root):
            raise BadRequest(f"code package entry {member.name!r} points outside the package")
        if member.issym() or member.islnk():
            link = (target.parent / member.linkname) if member.issym() else (root / member.linkname)
            if member.linkname.startswith("/") or not link.resolve().is_relative_to(root):
                raise BadRequest(f"code package link {member.name!r} points outside the package")
        member.mode &= 0o755  # no setuid, setgid or sticky bits; write for the owner only
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
    else:
        tar.extractall(dest)  # noqa: S202 - every member was checked above


def _check_name(checksum: str) -> None:
    if len(checksum) != 64 or any(c not in "0123456789abcdef" for c in checksum):
        raise BadRequest(f"code_checksum must be a sha256 hex digest, got {checksum!r}")
