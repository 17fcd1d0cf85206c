"""The lab's network: one bridge in the root namespace and one veth per host namespace.

    root ns:  {prefix}br  {subnet}.1/24
                 ├── {prefix}v1  ══ veth ══  eth0 {subnet}.11/24  (netns {prefix}-1)
                 └── {prefix}v2  ══ veth ══  eth0 {subnet}.12/24  (netns {prefix}-2)

Hosts reach each other and the root namespace at L2 through the bridge; nothing is routed or
NATed to the outside world (the root namespace's ip_forward is left as it is).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from . import _proc

NETNS_DIR = Path("/run/netns")
IFNAMSIZ = 15  # Linux interface names are at most 15 characters.


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def mac_for(address: str, role: int) -> str:
    """A fixed, locally administered MAC for an address (role 1: inside end, 2: root end, 0: bridge).

    Fixed MACs keep every neighbour cache valid when a host is rebuilt; otherwise the root namespace
    and the other hosts keep sending to the old MAC until their ARP entries expire (up to ~45 s).
    """
    octets = [int(x) for x in address.split(".")]
    return "02:fc:" + ":".join(f"{x:02x}" for x in [*octets[1:], role])


def ensure_bridge(bridge: str, gateway: str) -> None:
    """Create the bridge with the gateway address; a no-op when it already exists."""
    if not link_exists(bridge):
        _proc.run(["ip", "link", "add", bridge, "address", mac_for(gateway, 0), "type", "bridge"])
    addrs = _proc.run(["ip", "-br", "addr", "show", "dev", bridge]).stdout
    if f"{gateway}/24" not in addrs.split():
        _proc.run(["ip", "addr", "add", f"{gateway}/24", "dev", bridge])
    _proc.run(["ip", "link", "set", bridge, "up"])


def delete_link(name: str) -> None:
    if link_exists(name):
        _proc.run(["ip", "link", "del", name], check=False)


def create_host_net(netns: str, veth_root: str, veth_peer: str, bridge: str, address: str, gateway: str) -> None:
    """Create netns + veth pair, address the inner end as eth0, default route via the bridge."""
    _proc.run(["ip", "netns", "add", netns])
    _proc.run(["ip", "link", "add", veth_root, "address", mac_for(address, 2), "type", "veth",
               "peer", "name", veth_peer, "address", mac_for(address, 1)])
    _proc.run(["ip", "neigh", "flush", "to", address, "dev", bridge], check=False)
    _proc.run(["ip", "link", "set", veth_peer, "netns", netns])
    _proc.run(["ip", "link", "set", veth_root, "master", bridge, "up"])
    inside = ["ip", "-n", netns]
    _proc.run([*inside, "link", "set", veth_peer, "name", "eth0"])
    _proc.run([*inside, "addr", "add", f"{address}/24", "dev", "eth0"])
    _proc.run([*inside, "link", "set", "eth0", "up"])
    _proc.run([*inside, "link", "set", "lo", "up"])
    _proc.run([*inside, "route", "add", "default", "via", gateway])


def delete_host_net(netns: str, veth_root: str) -> None:
    """Delete the netns (which destroys the veth pair) and any stray root end. Idempotent."""
    if netns_exists(netns):
        _proc.run(["ip", "netns", "del", netns], check=False)
        # After a reboot the name may survive as a plain file that `ip netns del` cannot unmount.
        (NETNS_DIR / netns).unlink(missing_ok=True)
    delete_link(veth_root)


def netns_inode(netns: str) -> int | None:
    """Inode of the named network namespace (what /proc/PID/ns/net links to), or None."""
    try:
        st = (NETNS_DIR / netns).stat()
    except OSError:
        return None
    # A plain leftover file (not an nsfs bind mount) does not name a live namespace.
    return st.st_ino if st.st_dev != (NETNS_DIR.stat().st_dev) else None


def netns_dir_mounted() -> bool:
    """True if /run/netns is a mount point (os.path.ismount misses a same-fs self bind mount)."""
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == str(NETNS_DIR) for line in fh)


def release_netns_dir(*, mounted: bool, created: bool) -> None:
    """Undo what `ip netns add` did to /run/netns, but only what we caused and only once it is empty."""
    if not NETNS_DIR.is_dir() or any(NETNS_DIR.iterdir()):
        return
    if mounted and netns_dir_mounted():
        _proc.run(["umount", str(NETNS_DIR)], check=False)
    if created and not netns_dir_mounted():
        with contextlib.suppress(OSError):
            NETNS_DIR.rmdir()
