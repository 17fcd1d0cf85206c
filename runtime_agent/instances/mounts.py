"""Mounts that put a function's code and layers into a stem cell that is already running (stem cells, issue 15).

A cell's container mounts its own empty folders ``<cells>/<cell>/code`` at ``/code`` and ``<cells>/<cell>/opt`` at
``/opt``, read-only and ``rslave``: mounts made later on the host under those folders propagate into the container,
none go the other way. The built-in runtime is mounted by the engine at ``/opt/fc-runtime`` over the cell's
``/opt``. When a function takes the cell, the agent bind-mounts the function's unpacked code onto the code folder;
the container then sees it at ``/code``, exactly as a container started for the function sees its bind mount. A
function with layers also gets its merged layer tree (state/layers.py) bound onto the ``opt`` folder, and the
built-in runtime bound again at ``opt/fc-runtime`` inside it: the layer mount covers the engine's ``/opt/fc-runtime``
in the container, and the second bind keeps the runtime's own files where they were (as on the normal path, where
the engine mounts the merged tree at ``/opt`` and the runtime over it).

Read-only: a bind mount is created writable (MS_RDONLY is ignored on the first bind) and a later remount to
read-only is per mount, never propagated; so the code is bound from a read-only view of the code store
(``<views>/code``, bound once and remounted read-only, private to the host). A bind of a read-only mount is a
read-only clone, and so is every copy propagation makes of it: the container's ``/code`` (and ``/opt``) is
read-only from the moment it appears. The views: ``code`` (the code store), ``layers`` (the merged layer trees),
``runtime`` (the built-in runtime's folder). The container has no capabilities, so it can neither unmount nor remount it.

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
RUNTIME_MOUNTPOINT = "fc-runtime"  # /opt/fc-runtime (state/layers.py leaves the same folder in each merged tree)
VIEWS = ("code", "layers", "runtime")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


class MountError(Exception):
    pass


def _mount(source: str | None, target: Path, flags: int) -> None:
    if _libc.mount(source.encode() if source else None, str(target).encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise MountError(f"mount {source or ''} on {target} (flags {flags:#x}) failed: {os.strerror(err)}")


def _mount_table() -> dict[str, tuple[str, str]]:
    """Mount id -> (mount point, optional fields such as ``shared:N``), from /proc/self/mountinfo."""
    table: dict[str, tuple[str, str]] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        table[fields[0]] = (fields[4].replace("\\040", " "), " ".join(fields[6:fields.index("-")]))
    return table


def visible_mount(path: Path) -> str | None:
    """The optional fields (``shared:N``...) of the mount whose root ``path`` is, or None if ``path`` is no mount
    point. Asked of the kernel (the mount an open folder is on), not read from mountinfo by path: a mount hidden
    under a later one on a parent folder is listed there too (a lab host's namespace is copied from the machine's
    with whatever is mounted below /run, then given a /run of its own), and it is no mount point."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        mnt_id = next(line.split()[1] for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines()
                      if line.startswith("mnt_id:"))
    finally:
        os.close(fd)
    point, optional = _mount_table().get(mnt_id, ("", ""))
    return optional if point == str(path) else None


def make_shared_root(folder: Path) -> None:
    """Makes ``folder`` a mount of its own with shared propagation (docker's ``rslave`` needs a shared or slave
    source); idempotent."""
    folder.mkdir(parents=True, exist_ok=True)
    if visible_mount(folder) is None:
        _mount(str(folder), folder, MS_BIND)
    if "shared:" not in (visible_mount(folder) or ""):
        _mount(None, folder, MS_SHARED)


def read_only_view(source: Path, view: Path) -> None:
    """(Re)binds ``source`` read-only at ``view``, private. Rebound on every agent start: a view bound by an
    earlier run may show a folder since replaced (an uninstall removes the state folder)."""
    view.mkdir(parents=True, exist_ok=True)
    source.mkdir(parents=True, exist_ok=True)
    for _ in range(8):  # stacked binds of earlier runs, one at a time; bounded
        if visible_mount(view) is None:
            break
        detach(view)
    _mount(str(source), view, MS_BIND)
    _mount(None, view, MS_PRIVATE)
    _mount(None, view, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def bind(source: Path, target: Path) -> None:
    """Binds ``source`` (a folder inside a read-only view) on ``target``: the clone is read-only too."""
    _mount(str(source), target, MS_BIND)


def make_cell_folder(folder: Path) -> None:
    """A new cell's folders: ``code`` and ``opt`` (with the ``fc-runtime`` mount point the engine needs: it cannot
    create one inside a read-only ``/opt``)."""
    (folder / "code").mkdir(parents=True)
    (folder / "opt" / RUNTIME_MOUNTPOINT).mkdir(parents=True)


def inject(folder: Path, views: Path, code: Path, layers: Path | None) -> None:
    """Gives a cell its function's files: ``code`` (relative to the code view) at ``/code`` and, with layers,
    ``layers`` (relative to the layers view) at ``/opt`` with the runtime bound back at ``/opt/fc-runtime``."""
    bind(views / "code" / code, folder / "code")
    if layers is not None:
        bind(views / "layers" / layers, folder / "opt")
        bind(views / "runtime", folder / "opt" / RUNTIME_MOUNTPOINT)


def detach(target: Path) -> None:
    """Lazy unmount: the mount goes from the host now; copies in a container vanish with the container."""
    if _libc.umount2(str(target).encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (22, 2):  # EINVAL: not a mount point; ENOENT: gone
            raise MountError(f"umount {target} failed: {os.strerror(err)}")


def is_mounted(target: Path) -> bool:
    return visible_mount(target) is not None


def remove_cell_folder(folder: Path) -> None:
    """A cell's folder once its container is gone: its mounts (a lazy unmount takes a layer mount's runtime bind with
    it), then the folders."""
    for target in (folder / "code", folder / "opt"):
        for _ in range(4):  # stacked mounts, one at a time; bounded: a mount that will not go must not spin
            if not is_mounted(target):
                break
            detach(target)
    for path in (folder / "code", folder / "opt" / RUNTIME_MOUNTPOINT, folder / "opt", folder):
        if path.exists():
            os.rmdir(path)


def purge_mounts(run_dir: Path) -> None:
    """When uninstalling (after every container went): the cells' mounts and the read-only views."""
    cells = run_dir / "cells"
    for folder in cells.iterdir() if cells.is_dir() else ():
        remove_cell_folder(folder)
    for path in (*(run_dir / "views" / view for view in VIEWS), cells):
        if is_mounted(path):
            detach(path)
