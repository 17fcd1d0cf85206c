"""``python -m runtime_agent --config /etc/fc-agent/config.json``: runs the agent until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from .api.control import make_servers
from .config import AgentConfig
from .instances.driver import DockerDriver, DriverError
from .instances.mounts import MountError, purge_mounts
from .service import Agent


def purge(config_path: Path) -> int:
    try:
        config = AgentConfig.load(config_path)
        driver = DockerDriver(config.docker_url)
        for container in driver.list_owned(config.host_name):
            driver.destroy(container.id)
        driver.remove_networks()
        purge_mounts(config.run_dir)  # stem cells' code mounts and views
    except (OSError, ValueError, DriverError, MountError) as exc:
        logging.getLogger("fc-agent").error("purge failed: %s", exc)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fc-agent")
    parser.add_argument("--config", type=Path, default=Path("/etc/fc-agent/config.json"))
    parser.add_argument("--pidfile", type=Path, help="written once the agent serves; removed on a clean exit")
    parser.add_argument("--purge", action="store_true",
                        help="remove every container this agent owns, then exit (used when uninstalling)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.purge:
        return purge(args.config)
    try:
        config = AgentConfig.load(args.config)
        agent = Agent(config, DockerDriver(config.docker_url))
        agent.start()
        control, invoke = make_servers(agent)
    except (OSError, ValueError, DriverError) as exc:
        logging.getLogger("fc-agent").error("cannot start: %s", exc)
        return 1
    stop = threading.Event()
    # Signals only set a flag; the main thread shuts the servers down.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (control, invoke)]
    for t in threads:
        t.start()
    logging.getLogger("fc-agent").info(
        "serving control on %s:%d, invoke on %s:%d", config.control_address, config.control_port,
        config.invoke_address, config.invoke_port)
    if args.pidfile:
        args.pidfile.write_text(f"{os.getpid()}\n")
    stop.wait()
    for server in (invoke, control):
        server.shutdown()
        server.server_close()
    agent.close()
    if args.pidfile:
        args.pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
