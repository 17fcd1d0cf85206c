"""The agent version is a fingerprint of what the bundle packs, computed without packing (every program run with a
Fleet computes it): it must change exactly when the package's bytes would."""

from __future__ import annotations

import os
from pathlib import Path

from fc_provider._model.archive import fingerprint, pack_trees
from fc_provider._model.bundle import agent_bundle, agent_version


def _tree(root: Path) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("A = 1\n")
    (root / "pkg" / "sub" / "b.py").write_text("B = 2\n")
    (root / "pkg" / "tool").write_text("#!/bin/sh\n")
    os.symlink("a.py", root / "pkg" / "link.py")
    return root / "pkg"


def test_the_fingerprint_follows_every_change_the_package_would_show(tmp_path: Path) -> None:
    first, second = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    trees = lambda root: [(root, "pkg")]  # noqa: E731
    assert fingerprint(trees(first)) == fingerprint(trees(second))
    assert pack_trees(trees(first)).checksum == pack_trees(trees(second)).checksum
    seen = {fingerprint(trees(first))}
    for change in (lambda r: (r / "a.py").write_text("A = 3\n"),  # content
                   lambda r: (r / "tool").chmod(0o755),  # executable bit
                   lambda r: (r / "sub" / "b.py").rename(r / "sub" / "c.py"),  # name
                   lambda r: (r / "link.py").unlink() or os.symlink("tool", r / "link.py"),  # link target
                   lambda r: (r / "sub" / "d").mkdir(),  # an empty folder
                   lambda r: (r / "e.py").write_text("")):  # an empty file
        before = pack_trees(trees(second)).checksum
        change(second)
        assert pack_trees(trees(second)).checksum != before  # the package changes ...
        assert fingerprint(trees(second)) not in seen  # ... and so does the fingerprint
        seen.add(fingerprint(trees(second)))
    (second / "__pycache__").mkdir()
    (second / "a.pyc").write_bytes(b"x")  # what the package leaves out changes nothing
    assert fingerprint(trees(second)) in seen


def test_the_agent_version_is_stable_and_the_bundle_still_packs() -> None:
    assert len(agent_version()) == 16 and agent_version() == agent_version()
    assert agent_bundle().size > 0
