"""Stack configuration in one Pulumi CLI call: every `pulumi` command pays the CLI's start-up (about a second on a
loaded machine), and `Stack.config` runs one `pulumi config set` per key."""

from __future__ import annotations

from typing import Any


def configure(stack: Any, secrets: dict[str, str] | None = None, **values: str) -> None:
    """Sets ``values`` (plain) and ``secrets`` (encrypted in the stack's config) with one `pulumi config set-all`."""
    argv = ["config", "set-all"]
    for key, value in values.items():
        argv += ["--plaintext", f"{key}={value}"]
    for key, value in (secrets or {}).items():
        argv += ["--secret", f"{key}={value}"]
    stack.run(*argv)


def remove(stack: Any, *keys: str, check: bool = True) -> None:
    """Removes ``keys`` from the stack's config with one `pulumi config rm-all`."""
    stack.run("config", "rm-all", *keys, check=check)
