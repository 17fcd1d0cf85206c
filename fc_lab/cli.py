"""The ``fc-lab`` command: up, down, status, images."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import _systemd_host
from ._errors import LabError
from ._images import DEFAULT_RUNTIME, RUNTIME_BUILDS, build_runtime_image
from ._lab import Lab


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fc-lab", description="A local lab fleet of isolated hosts on this machine.")
    p.add_argument("--state-dir", type=Path, default=None, help="state folder (default $FC_LAB_DIR or /var/lib/fc-lab)")
    p.add_argument("--prefix", default=None,
                   help="name prefix for netns, veths, bridge, cgroups (default $FC_LAB_PREFIX or fclab)")
    p.add_argument("--subnet", default=None,
                   help="first three octets of the lab /24 (default $FC_LAB_SUBNET or 10.213.0)")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="bring the lab up (idempotent)")
    up.add_argument("--hosts", type=int, default=3, help="number of hosts (default 3)")
    sub.add_parser("down", help="remove the lab completely")
    sub.add_parser("status", help="print host health; exit 1 unless all hosts are healthy")
    images = sub.add_parser("images", help="build runtime image tarballs (cached) and print their paths")
    images.add_argument("--force", action="store_true", help="rebuild even if cached")
    images.add_argument("--runtime", action="append", choices=[*RUNTIME_BUILDS, "all"],
                        help="a runtime whose image to build (repeatable; 'all'; default python3.11)")
    images.add_argument("--systemd-host", action="store_true",
                        help="build the rootfs of the lab's systemd host instead (fc_lab/_systemd_host.py)")
    sub.add_parser("systemd-host", help="start the extra host lab-systemd (init: systemd) and print its address")
    build = sub.add_parser("build-image", help="build a Dockerfile folder into an image on every lab host")
    build.add_argument("context", type=Path, help="folder holding the Dockerfile (FROM an image the hosts hold)")
    build.add_argument("--tag", required=True, help="image name and tag, e.g. fc-example/web:1")
    build.add_argument("--host", action="append", help="only this host (repeatable; default: all)")
    return p


def _status(lab: Lab) -> int:
    statuses = lab.status()
    if not statuses:
        print("no lab hosts")
        return 1
    def ok(flag: bool) -> str:
        return "ok" if flag else "DOWN"

    for s in statuses:
        print(f"{s.name:8} {s.address:15} holder={ok(s.holder):4} sshd={ok(s.sshd):4} dockerd={ok(s.dockerd)}")
    return 0 if all(s.healthy for s in statuses) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.monotonic()
    try:
        if args.command == "images" and args.systemd_host:
            print(_systemd_host.build_image(force=args.force), flush=True)
            return 0
        if args.command == "images":
            runtimes = args.runtime or [DEFAULT_RUNTIME]
            for runtime in (list(RUNTIME_BUILDS) if "all" in runtimes else runtimes):
                print(build_runtime_image(force=args.force, runtime=runtime), flush=True)
            return 0
        lab = Lab(args.state_dir, prefix=args.prefix, subnet=args.subnet)
        if args.command == "up":
            fleet = lab.up(args.hosts)
            for h in fleet["hosts"]:
                print(f"{h['name']:8} {h['address']}")
            print(f"fleet file: {lab.fleet_path} ({time.monotonic() - started:.1f}s)")
            return 0
        if args.command == "systemd-host":
            host = lab.systemd_host()
            print(f"{host['name']} {host['address']} ({time.monotonic() - started:.1f}s)")
            return 0
        if args.command == "build-image":
            for host, image_id in lab.build_image(args.context, args.tag, args.host).items():
                print(f"{host:8} {args.tag} {image_id[:19]}")
            return 0
        if args.command == "down":
            lab.down()
            print(f"lab down ({time.monotonic() - started:.1f}s)")
            return 0
        return _status(lab)
    except LabError as exc:
        print(f"fc-lab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
