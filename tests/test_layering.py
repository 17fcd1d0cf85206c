"""The layering of docs/architecture.md, checked on the source: a lower layer never imports a higher one.

Each module's imports are read with ``ast`` (relative imports resolved), so nothing is imported to check them. A
layer may import its own layer and every layer below it; peers at one rank (``state`` and ``observe``) do not import
each other. A module that belongs to no layer is an error too, so a new subpackage has to be given its place here
(and in the architecture page) before it can land."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("fc_common", "runtime_agent", "fc_provider")

# (prefix, layer name, rank). The longest matching prefix decides a module's layer.
LAYERS = [
    ("fc_common", "fc_common", 0),
    # the agent, from the bottom up
    ("runtime_agent", "agent base", 1),  # __init__, errors, config, wire
    ("runtime_agent.bootstrap", "agent bootstrap", 1),  # runs inside containers: stdlib only (see below)
    ("runtime_agent.state", "agent state", 2),
    ("runtime_agent.observe", "agent observe", 2),
    ("runtime_agent.instances", "agent instances", 3),
    ("runtime_agent.events", "agent events", 4),
    ("runtime_agent.service", "agent service", 5),
    ("runtime_agent.releases", "agent service", 5),  # versions published and retired: composed by the facade
    ("runtime_agent.invocation", "agent service", 5),  # the invocation path: composed by the facade
    ("runtime_agent.tending", "agent service", 5),  # the reaper: composed by the facade
    ("runtime_agent.api", "agent api", 6),
    ("runtime_agent.__main__", "agent main", 7),
    # the provider, from the bottom up
    ("fc_provider._errors", "provider errors", 1),
    ("fc_provider._inputs", "provider inputs", 1),  # the typed nested Args classes: pulumi only
    ("fc_provider._model", "provider model", 2),
    ("fc_provider._remote", "provider remote", 3),
    ("fc_provider", "provider resources", 4),  # fleet.py, function.py, ... one public module per resource
    ("fc_provider.__init__", "provider package", 5),
    ("fc_provider.cli", "provider cli", 6),
]
# Whole packages one side must never import.
FORBIDDEN = {
    "fc_common": ("runtime_agent", "fc_provider", "fc_lab"),
    "runtime_agent": ("fc_provider", "fc_lab"),
    "fc_provider": ("runtime_agent", "fc_lab"),
}


def layer_of(module: str) -> tuple[str, int]:
    best = max((p for p in LAYERS if module == p[0] or module.startswith(p[0] + ".")), key=lambda p: len(p[0]),
               default=None)
    if best is None:
        raise LookupError(f"module {module} belongs to no layer; give it one in tests/test_layering.py")
    return best[1], best[2]


def violation(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None when it may."""
    root = importer.split(".")[0]
    for banned in FORBIDDEN.get(root, ()):
        if imported == banned or imported.startswith(banned + "."):
            return f"{importer} imports {imported}: {root} never imports {banned}"
    if imported.split(".")[0] not in PACKAGES:
        if importer.startswith("runtime_agent.bootstrap") and imported.split(".")[0] in ("docker", "prometheus_client"):
            return f"{importer} imports {imported}: the bootstrap runtime runs inside containers on the stdlib alone"
        return None
    if importer.startswith("runtime_agent.bootstrap") or imported.startswith("runtime_agent.bootstrap"):
        return f"{importer} imports {imported}: the bootstrap runtime is mounted into containers and stands alone"
    (src_name, src_rank), (dst_name, dst_rank) = layer_of(importer), layer_of(imported)
    if dst_rank > src_rank:
        return f"{importer} ({src_name}) imports {imported} ({dst_name}), a higher layer"
    if dst_rank == src_rank and src_name != dst_name and src_name.split()[0] == dst_name.split()[0]:
        return f"{importer} ({src_name}) imports {imported} ({dst_name}), a peer layer"
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1 and parts[-2] != "fc_provider":
        parts = parts[:-1]  # a subpackage's __init__ is the subpackage; fc_provider's own is its top layer
    return ".".join(parts)


def imports_of(path: Path) -> list[str]:
    """Absolute names of every module `path` imports (``from X import name`` counts as X and X.name)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    elif package[-1] == "__init__":
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found.append(target)
            found += [f"{target}.{alias.name}" for alias in node.names
                      if (REPO / Path(*f"{target}.{alias.name}".split("."))).with_suffix(".py").exists()
                      or (REPO / Path(*f"{target}.{alias.name}".split("."))).is_dir()]
    return found


def all_modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in all_modules():
        layer_of(module_name(path))


def test_no_lower_layer_imports_a_higher_one() -> None:
    found = [why for path in all_modules() for imported in imports_of(path)
             if (why := violation(module_name(path), imported))]
    assert found == []


@pytest.mark.parametrize("importer, imported", [
    ("runtime_agent.instances.pool", "runtime_agent.api.invoke"),
    ("runtime_agent.state.store", "runtime_agent.instances.spec"),
    ("runtime_agent.state.store", "runtime_agent.observe.metrics"),
    ("runtime_agent.instances.spec", "runtime_agent.service"),
    ("runtime_agent.events", "runtime_agent.api.control"),
    ("fc_provider._model.placement", "runtime_agent.instances.spec"),
    ("fc_provider._model.placement", "fc_provider._remote.ssh"),
    ("fc_provider._remote.fleetops", "fc_provider.function"),
    ("fc_provider.function", "fc_provider.cli"),
    ("fc_common.sizing", "runtime_agent.errors"),
    ("runtime_agent.bootstrap.runtime", "runtime_agent.errors"),
])
def test_the_check_catches_an_upward_import(importer: str, imported: str) -> None:
    assert violation(importer, imported) is not None


def test_the_check_reads_relative_imports() -> None:
    pool = imports_of(REPO / "runtime_agent/instances/pool.py")
    assert "runtime_agent.instances.lifecycle" in pool and "runtime_agent.state.store" in pool
