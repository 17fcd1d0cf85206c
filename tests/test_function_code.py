"""The ``code`` input: folders, archives and AssetArchives pack to the same bytes for the same content, and code
that cannot be packed becomes a check failure on ``code`` (no host needed)."""

from __future__ import annotations

from pathlib import Path

import pulumi

from fc_provider._model.code import pack, summarize
from fc_provider.function import FunctionProvider

SOURCE = "def handler(event, context):\n    return event\n"


def test_asset_archive_packs_deterministically_and_like_the_same_folder(tmp_path: Path) -> None:
    helper = tmp_path / "helper.py"
    helper.write_text("X = 1\n")
    lib = tmp_path / "lib"
    (lib / "pkg").mkdir(parents=True)
    (lib / "pkg" / "__init__.py").write_text("")
    first = summarize(pulumi.AssetArchive({"index.py": pulumi.StringAsset(SOURCE),
                                           "helper.py": pulumi.FileAsset(str(helper)),
                                           "vendor": pulumi.FileArchive(str(lib))}))
    second = summarize(pulumi.AssetArchive({"vendor": pulumi.FileArchive(str(lib)),
                                            "helper.py": pulumi.FileAsset(str(helper)),
                                            "index.py": pulumi.StringAsset(SOURCE)}))
    assert first["code_error"] is None and first["code_checksum"] == second["code_checksum"]
    folder = tmp_path / "folder"
    (folder / "vendor" / "pkg").mkdir(parents=True)
    (folder / "index.py").write_text(SOURCE)
    (folder / "helper.py").write_text("X = 1\n")
    (folder / "vendor" / "pkg" / "__init__.py").write_text("")
    assert summarize(str(folder))["code_checksum"] == first["code_checksum"]
    assert summarize(pulumi.FileArchive(str(folder)))["code_checksum"] == first["code_checksum"]
    assert pack(first["code"]).checksum == first["code_checksum"]
    assert first["code_size"] == pack(first["code"]).size


def test_code_that_cannot_be_packed_is_a_check_failure_on_code(tmp_path: Path) -> None:
    cases = [
        (str(tmp_path / "missing"), "does not exist"),
        (pulumi.RemoteAsset("https://example.com/x.py"), "RemoteAsset is not supported"),
        (pulumi.AssetArchive({"../escape.py": pulumi.StringAsset(SOURCE)}), "relative path inside the package"),
        (pulumi.AssetArchive({"x": pulumi.RemoteArchive("https://example.com/a.zip")}), "RemoteArchive"),
    ]
    for code, phrase in cases:
        summary = summarize(code)
        news = {"function_name": "f", "code_checksum": summary["code_checksum"], "code_error": summary["code_error"]}
        failures = FunctionProvider().check({}, news).failures
        assert [f.property for f in failures] == ["code"], (code, failures)
        assert phrase in failures[0].reason, failures[0].reason


def test_no_code_is_fine_only_for_custom_container() -> None:
    summary = summarize(None)
    assert summary["code_checksum"] is None and summary["code_error"] is None
    base = {"function_name": "f", "code_checksum": None}
    assert FunctionProvider().check({}, {**base, "runtime": "custom-container",
                                         "custom_container_config": {"image": "nginx:1.27"}}).failures == []
    failures = FunctionProvider().check({}, {**base, "runtime": "custom", "custom_runtime_config": {
        "command": ["./server"]}}).failures
    assert [(f.property, "code is required for runtime custom" in f.reason) for f in failures] == [("code", True)]
