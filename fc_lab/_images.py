"""The offline runtime images ``fc-runtime/<runtime>``, one per built-in runtime, each running its own interpreter.

No registry is reachable, so each image is a Debian root filesystem made by ``debootstrap --variant=minbase
--include=<interpreter>`` from the machine's own Debian mirror, packed as a plain tarball and loaded into each
engine with ``docker import``. The Debian release decides the interpreter's version (checked here with apt-cache
madison against bullseye, bookworm and trixie):

| runtime | image | Debian | interpreter |
|---|---|---|---|
| python3.9 | fc-runtime/python3.9 | 11 bullseye | Python 3.9.2 |
| python3.11 | fc-runtime/python3.11 | 12 bookworm | Python 3.11.2 (also custom, custom.debian12) |
| python3.13 | fc-runtime/python3.13 | 13 trixie | Python 3.13.5 |
| nodejs18 | fc-runtime/nodejs18 | 12 bookworm | Node.js 18.20 |
| nodejs20 | fc-runtime/nodejs20 | 13 trixie | Node.js 20.19 |

No Debian release ships Python 3.10 or 3.12, so those runtimes are not built (the provider refuses them unless the
fleet maps them to an image of the user's own).

Each tarball is cached at ``${FC_CACHE_DIR:-~/.cache/fc-provider}/images/fc-runtime-<runtime>.tar``; it is written
under a temporary name and renamed, so a cache file is always complete, and a lock file makes a second builder
(a test while setup builds in the background) wait for the first instead of building again.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from ._errors import ImageBuildError

RUNTIME_IMAGE = "fc-runtime/python3.11"  # the base image: every lab host gets it
RUNTIME_TAG = "latest"
DEFAULT_RUNTIME = "python3.11"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"  # the release this machine's mirror is looked up by


@dataclass(frozen=True)
class RuntimeBuild:
    image: str
    suite: str
    package: str  # the interpreter's Debian package
    binary: str  # checked in the root filesystem


RUNTIME_BUILDS = {
    "python3.9": RuntimeBuild("fc-runtime/python3.9", "bullseye", "python3", "usr/bin/python3"),
    "python3.11": RuntimeBuild(RUNTIME_IMAGE, "bookworm", "python3", "usr/bin/python3"),
    "python3.13": RuntimeBuild("fc-runtime/python3.13", "trixie", "python3", "usr/bin/python3"),
    "nodejs18": RuntimeBuild("fc-runtime/nodejs18", "bookworm", "nodejs", "usr/bin/node"),
    "nodejs20": RuntimeBuild("fc-runtime/nodejs20", "trixie", "nodejs", "usr/bin/node"),
}


def tarball_name(runtime: str = DEFAULT_RUNTIME) -> str:
    return f"fc-runtime-{runtime}.tar"


def _build_of(runtime: str) -> RuntimeBuild:
    try:
        return RUNTIME_BUILDS[runtime]
    except KeyError:
        raise ImageBuildError(f"runtime {runtime!r} has no image build; buildable: "
                              f"{', '.join(RUNTIME_BUILDS)}") from None

# Removed from the root filesystem before packing: nothing at run time reads them.
_SHRINK = (
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
    "var/lib/apt/lists", "var/cache/apt", "var/cache/debconf/templates.dat-old", "var/log",
)


def cache_dir() -> Path:
    """``$FC_CACHE_DIR/images`` or ``~/.cache/fc-provider/images``."""
    base = os.environ.get("FC_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "fc-provider"
    return root / "images"


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt uses (first ``.../debian`` URI serving bookworm)."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        # deb822 stanzas ("URIs: ... / Suites: ...") and one-line "deb URI suite comp" entries.
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(.+)$", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                for uri in uris.group(1).split():
                    if uri.rstrip("/").endswith("/debian"):
                        return uri.rstrip("/")
        for m in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            if m.group(2) == SUITE and m.group(1).rstrip("/").endswith("/debian"):
                return m.group(1).rstrip("/")
    return DEFAULT_MIRROR


def _umount_under(root: Path) -> None:
    # A failed debootstrap can leave /proc or /sys mounted inside the target; unmount before deleting it.
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh if line.split()[4].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def build_runtime_image(cache_dir_: Path | None = None, force: bool = False,
                        runtime: str = DEFAULT_RUNTIME) -> Path:
    """Build (or reuse) the rootfs tarball of ``runtime``'s image and return its path.

    cache_dir_: folder for the tarball; default :func:`cache_dir`. force: rebuild even if cached.
    Returns at once when the tarball exists and force is false; waits while another process builds it.
    """
    build = _build_of(runtime)
    folder = cache_dir_ if cache_dir_ is not None else cache_dir()
    target = folder / tarball_name(runtime)
    if target.is_file() and not force:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{tarball_name(runtime)}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per image; the others wait and reuse its tarball
        if target.is_file() and not force:
            return target
        return _build(build, folder, target)


def _build(build: RuntimeBuild, folder: Path, target: Path) -> Path:
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=folder))
    rootfs = work / "rootfs"
    tmp_tar = work / (target.name + ".part")
    try:
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={build.package}", build.suite, str(rootfs),
             debian_mirror()],
            capture_output=True, text=True, timeout=1800,
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            raise ImageBuildError(f"debootstrap failed ({proc.returncode}):\n{tail}")
        _umount_under(rootfs)
        passwd = (rootfs / "etc/passwd").read_text()
        if not re.search(r"^nobody:[^:]*:65534:65534:", passwd, re.M):
            raise ImageBuildError("runtime rootfs has no user nobody (65534)")
        if not (rootfs / build.binary).exists():
            raise ImageBuildError(f"runtime rootfs of {build.image} has no /{build.binary}")
        for rel in _SHRINK:
            shutil.rmtree(rootfs / rel, ignore_errors=True)
        for rel in ("var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/log"):
            (rootfs / rel).mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tmp_tar), "."],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageBuildError(f"tar failed: {proc.stderr.strip()}")
        os.replace(tmp_tar, target)
        return target
    except OSError as exc:
        raise ImageBuildError(f"building the runtime image failed: {exc}") from exc
    finally:
        _umount_under(work)
        shutil.rmtree(work, ignore_errors=True)


def has_runtime_image(client: docker.DockerClient, runtime: str = DEFAULT_RUNTIME) -> bool:
    """True if the engine already holds ``runtime``'s image (``fc-runtime/python3.11:latest`` by default)."""
    try:
        client.images.get(f"{_build_of(runtime).image}:{RUNTIME_TAG}")
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.DockerException as exc:
        raise ImageBuildError(f"cannot query images: {exc}") from exc


def load_runtime_image(client: docker.DockerClient, tar_path: Path, runtime: str = DEFAULT_RUNTIME) -> None:
    """Import the rootfs tarball into the engine as ``runtime``'s image (``fc-runtime/python3.11:latest``)."""
    image = _build_of(runtime).image
    try:
        # import_image_from_file streams the file instead of reading it into memory.
        client.api.import_image_from_file(str(tar_path), repository=image, tag=RUNTIME_TAG)
    except (docker.errors.DockerException, OSError) as exc:
        raise ImageBuildError(f"docker import of {tar_path} failed: {exc}") from exc
    if not has_runtime_image(client, runtime):
        raise ImageBuildError(f"{image}:{RUNTIME_TAG} missing after import")


def build_context_image(client: docker.DockerClient, context: Path, tag: str) -> str:
    """Build the Dockerfile in ``context`` as ``tag`` on one engine, offline (``pull=False``: a ``FROM`` must name
    an image the engine holds, such as ``fc-runtime/python3.11``). Returns the image id."""
    if not (context / "Dockerfile").is_file():
        raise ImageBuildError(f"{context} is not a folder with a Dockerfile")
    try:
        image, _logs = client.images.build(path=str(context), tag=tag, pull=False, rm=True, forcerm=True,
                                           timeout=300)
    except docker.errors.BuildError as exc:
        tail = "".join(str(chunk.get("stream") or chunk.get("error") or "") for chunk in exc.build_log)[-2000:]
        raise ImageBuildError(f"building {tag} from {context} failed: {exc.msg}\n{tail}") from exc
    except (docker.errors.DockerException, OSError) as exc:
        raise ImageBuildError(f"building {tag} from {context} failed: {exc}") from exc
    return image.id
