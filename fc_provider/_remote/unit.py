"""The systemd unit the Fleet installs on hosts that run systemd, rendered from templates/fc-agent.service.j2."""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from . import commands as cmd

RESTART_DELAY_SECONDS = 1


@functools.lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    return env.get_template("fc-agent.service.j2")


def render_unit(python: str) -> str:
    """The unit for an agent run by ``python`` (an absolute path: systemd's ExecStart takes no PATH lookup)."""
    if not python.startswith("/"):
        raise ValueError(f"the agent's python must be an absolute path, not {python!r}")
    return _template().render(agent_root=cmd.AGENT_ROOT, config=cmd.AGENT_CONFIG, pidfile=cmd.AGENT_PIDFILE,
                              log=cmd.AGENT_LOG, python=python, restart_delay_seconds=RESTART_DELAY_SECONDS)
