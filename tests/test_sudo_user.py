"""A deploy through an SSH user that is not root but has passwordless sudo: every command runs through sudo -n,
uploads are moved into place by root; a user without sudo rights fails at once, naming the host, never prompting.
The users are made on this machine (lab hosts share its /etc/passwd and sudoers)."""

from __future__ import annotations

import dataclasses
import secrets
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from _agent import deploy, grant, post

from fc_lab import Lab
from fc_provider._errors import FcProviderError
from fc_provider._remote import fleetops as ops

SUDO_USER, PLAIN_USER = "fcdeploy", "fcplain"


def ensure_user(name: str, *, sudo: bool) -> None:
    # Password "*": no password login, yet not locked ("!"), which sshd without PAM would refuse outright.
    subprocess.run(["sh", "-c", f"id {name} >/dev/null 2>&1 || useradd -m -s /bin/sh {name}; usermod -p '*' {name}"],
                   check=True)
    rule = Path(f"/etc/sudoers.d/{name}")
    if sudo:
        rule.write_text(f"{name} ALL=(root) NOPASSWD: ALL\n")
        rule.chmod(0o440)
    else:
        rule.unlink(missing_ok=True)


def connection(lab_fleet: dict, user: str, index: int = 1) -> ops.FleetConnection:
    return ops.FleetConnection.from_dict({
        "hosts": [{**lab_fleet["hosts"][index], "user": user}],
        "private_key": Path(lab_fleet["ssh_private_key_path"]).read_text(),
        "token": secrets.token_urlsafe(16),
    })


@pytest.fixture(scope="module")
def sudo_conn(lab: Lab, lab_fleet: dict) -> Iterator[ops.FleetConnection]:
    assert subprocess.run(["sh", "-c", "command -v sudo"]).returncode == 0, "sudo is missing (scripts/setup.sh)"
    ensure_user(SUDO_USER, sudo=True)
    ensure_user(PLAIN_USER, sudo=False)
    conn = connection(lab_fleet, SUDO_USER)
    yield conn
    ops.uninstall_agent(conn, conn.hosts[0])


def test_a_full_deploy_through_a_sudo_user(sudo_conn: ops.FleetConnection, lab: Lab, tmp_path: Path) -> None:
    info = ops.install_agent(sudo_conn, sudo_conn.hosts[0], {"idle_timeout_seconds": 300})
    sudo_conn = dataclasses.replace(sudo_conn, token=info["token"])  # an agent already there keeps its token
    grant(sudo_conn)
    url = deploy(sudo_conn, tmp_path, "via-sudo", "def handler(event, context):\n    return b'sudo:' + event\n")
    status, _, body = post(url, b"ok")
    assert (status, body) == (200, b"sudo:ok")
    host = sudo_conn.hosts[0].name
    owners = lab.run(host, ["stat", "-c", "%U %a", "/etc/fc-agent/config.json"], capture_output=True, text=True,
                     check=True).stdout.split()
    assert owners == ["root", "600"]  # uploaded by the user, owned by root, mode kept
    staged = lab.run(host, ["sh", "-c", "ls /tmp | grep -c fc-upload || true"], capture_output=True, text=True)
    assert staged.stdout.strip() == "0"  # no staged upload left behind


def test_a_user_without_sudo_fails_at_once_naming_the_host(lab_fleet: dict, sudo_conn: ops.FleetConnection) -> None:
    conn = connection(lab_fleet, PLAIN_USER, index=2)
    with pytest.raises(FcProviderError) as caught:
        ops.install_agent(conn, conn.hosts[0], {})
    message = str(caught.value)
    assert conn.hosts[0].name in message and "sudo" in message and "password" in message, message
