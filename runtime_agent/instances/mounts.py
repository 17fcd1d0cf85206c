"""Mounts that put a function's code into a stem cell that is already running (stem cells, issue 15).

A cell's container mounts its own empty folder ``<cells>/<cell>/code`` at ``/code``, read-only and ``rslave``:
mounts made later on the host under that folder propagate into the container, none go the other way. When a
function takes the cell, the agent bind-mounts the function's unpacked code onto the folder; the container then
sees it at ``/code``, exactly as a container started for the function sees its bind mount.

Read-only: a bind mount is created writable (MS_RDONLY is ignored on the first bind) and a later remount to
read-only is per mount, never propagated; so the code is bound from a read-only view of the code store
(``<views>/code``, bound once and remounted read-only, private to the host). A bind of a read-only mount is a
read-only clone, and so is every copy propagation makes of it: the container's ``/code`` is read-only from the
moment it appears. The container has no capabilities, so it can neither unmount nor remount it.

Everything here is a plain mount(2)/umount2(2) through libc (a few microseconds; the ``mount`` tool costs a
process start each time). Linux only; the agent runs as root.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


class MountError(Exception):
    pass


def _mount(source: str | None, target: Path, flags: int) -> None:
    if _libc.mount(source.encode() if source else None, str(target).encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise MountError(f"mount {source or ''} on {target} (flags {flags:#x}) failed: {os.strerror(err)}")


def mount_points() -> dict[str, str]:
    """Mount point -> its optional fields (``shared:N``, ``master:N``...) from /proc/self/mountinfo."""
    points: dict[str, str] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        optional = fields[6:fields.index("-")]
        points[fields[4].replace("\\040", " ")] = " ".join(optional)
    return points


def make_shared_root(folder: Path) -> None:
    """Makes ``folder`` a mount of its own with shared propagation (docker's ``rslave`` needs a shared or slave
    source); idempotent."""
    folder.mkdir(parents=True, exist_ok=True)
    points = mount_points()
    if str(folder) not in points:
        _mount(str(folder), folder, MS_BIND)
        points = mount_points()
    if "shared:" not in points.get(str(folder), ""):
        _mount(None, folder, MS_SHARED)


def read_only_view(source: Path, view: Path) -> None:
    """(Re)binds ``source`` read-only at ``view``, private. Rebound on every agent start: a view bound by an
    earlier run may show a folder since replaced (an uninstall removes the state folder)."""
    view.mkdir(parents=True, exist_ok=True)
    source.mkdir(parents=True, exist_ok=True)
    while str(view) in mount_points():
        detach(view)
    _mount(str(source), view, MS_BIND)
    _mount(None, view, MS_PRIVATE)
    _mount(None, view, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def bind(source: Path, target: Path) -> None:
    """Binds ``source`` (a folder inside a read-only view) on ``target``: the clone is read-only too."""
    _mount(str(source), target, MS_BIND)


def detach(target: Path) -> None:
    """Lazy unmount: the mount goes from the host now; copies in a container vanish with the container."""
    if _libc.umount2(str(target).encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (22, 2):  # EINVAL: not a mount point; ENOENT: gone
            raise MountError(f"umount {target} failed: {os.strerror(err)}")


def is_mounted(target: Path) -> bool:
    return str(target) in mount_points()


def remove_cell_folder(folder: Path) -> None:
    """A cell's folder once its container is gone: its code mount, then the folder."""
    detach(folder / "code")
    for path in (folder / "code", folder):
        if path.exists():
            os.rmdir(path)


def purge_mounts(run_dir: Path) -> None:
    """When uninstalling (after every container went): the cells' code mounts and the read-only views."""
    cells = run_dir / "cells"
    for folder in cells.iterdir() if cells.is_dir() else ():
        remove_cell_folder(folder)
    for path in (run_dir / "views" / "code", cells):
        if is_mounted(path):
            detach(path)
