"""Out-of-band access to the lab's agents for tests: the control API through SSH, as an operator would."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fc_lab import Lab
from fc_provider._remote.agent_client import AgentClient
from fc_provider._remote.ssh import HostSpec, SSHSession


@contextmanager
def agent(lab: Lab, fleet: dict, host_name: str) -> Iterator[tuple[SSHSession, AgentClient]]:
    host = next(h for h in fleet["hosts"] if h["name"] == host_name)
    token = json.loads(lab.run(host_name, ["cat", "/etc/fc-agent/config.json"], capture_output=True, text=True,
                               check=True).stdout)["token"]
    spec = HostSpec(host["name"], host["address"], host["port"], fleet["ssh_user"], host["host_public_key"])
    with SSHSession(spec, Path(fleet["ssh_private_key_path"]).read_text()) as ssh:
        client = AgentClient(host_name, ssh.transport, 7701, token)
        try:
            yield ssh, client
        finally:
            client.close()
