"""Layers through the real Pulumi CLI on the lab fleet: one LayerVersion shared by two functions (its package on
each host once), and the rules that fail at preview: a runtime the layer excludes, an ARN of another account (both
through the CLI), an ARN of no layer on the fleet and an archive escaping its root (the resources' checks, which
Pulumi calls at preview, called with the program's inputs: the CLI adds nothing to them)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from _agent import grant_lab, post
from _pulumi import REPO, Stack

from fc_lab import Lab
from fc_provider._model.code import summarize
from fc_provider.function import FunctionProvider
from fc_provider.layer import LayerVersionProvider

PROGRAM = REPO / "tests" / "programs" / "layers"


def _preview_fails(stack: Stack) -> str:
    proc = stack.run("preview", check=False)
    assert proc.returncode != 0, proc.stdout
    return proc.stdout + proc.stderr


def test_a_layer_shared_by_two_functions_and_the_rules_at_preview(lab: Lab, fleet_file: Path,
                                                                  tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    (layer / "python" / "greeting").mkdir(parents=True)
    (layer / "python" / "greeting" / "__init__.py").write_text("WORDS = 'hello from the layer'\n")
    code = tmp_path / "code"
    code.mkdir()
    (code / "index.py").write_text("import greeting\n\ndef handler(event, context):\n    return greeting.WORDS\n")
    stack = Stack(tmp_path, "layers", program=PROGRAM)
    # The layer is for python3.11 only, and the second ARN is another account's: both refused, each naming its
    # entry, by the function's check (one preview: the check reports every rule it breaks), before anything exists.
    stack.config(fleetFile=str(fleet_file), layerCode=str(layer), codeDir=str(code), runtime="python3.13",
                 extraLayerArn="acs:fc:cn-shanghai:official:layers/Python39/versions/3")
    out = _preview_fails(stack)
    assert "layers[0]: the layer is compatible with python3.11, not python3.13" in out, out
    assert "layers[1]: 'acs:fc:cn-shanghai:official:layers/Python39/versions/3' is a layer of another region or " \
        "account" in out, out

    stack.config(runtime="python3.11")
    stack.unset("extraLayerArn")
    try:
        stack.up()
        grant_lab(lab)  # the key post() signs with
        outputs = stack.outputs()
        assert outputs["arn"] == "acs:fc:local:fleet:layers/greeter/versions/1"
        for urls in outputs["endpoints"]:
            for url in urls:
                status, _, body = post(url)
                assert status == 200 and body == b"hello from the layer", body
        checksum = outputs["checksum"]
        for host in lab.fleet()["hosts"]:  # uploaded once per host, whatever uses it
            listing = lab.run(host["name"], ["ls", "/var/lib/fc-agent/code"], capture_output=True, text=True,
                              check=True).stdout.split()
            assert sorted(e for e in listing if e.startswith(checksum)) == [checksum, f"{checksum}.tar.gz"]

        # An ARN of no layer, looked up on the fleet by the second function's check: its inputs as deployed, plus it.
        second = _inputs(stack, "second")
        missing = "acs:fc:local:fleet:layers/nothing-here/versions/4"
        news = {**second, "layers": [*second["layers"], missing], "layer_runtimes": [*second["layer_runtimes"], None]}
        failures = [(f.property, f.reason) for f in FunctionProvider().check({}, news).failures]
        assert failures == [("layers", f"layers[1]: layer {missing} does not exist on this fleet")], failures
    finally:
        stack.destroy()


def _inputs(stack: Stack, name: str) -> dict[str, Any]:
    """A resource's inputs in the stack's state, secrets in the clear (as the provider receives them)."""
    state = json.loads(stack.run("stack", "export", "--show-secrets").stdout)
    (resource,) = [r for r in state["deployment"]["resources"] if r["urn"].endswith(f"::{name}")]
    return _revealed(resource["inputs"])


def _revealed(value: Any) -> Any:
    if isinstance(value, dict):
        if "plaintext" in value and len(value) == 2:  # a secret: {<signature>: <secret sig>, "plaintext": json}
            return _revealed(json.loads(value["plaintext"]))
        return {k: _revealed(v) for k, v in value.items() if k != "__provider"}
    if isinstance(value, list):
        return [_revealed(v) for v in value]
    return value


def test_an_archive_escaping_its_root_is_refused_by_the_layer_check(tmp_path: Path) -> None:
    """The LayerVersion's check, with the inputs the resource builds from its code (zip-slip)."""
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as zf:
        zf.writestr("../../etc/evil", "x")
    code = summarize(str(slip))
    news = {"layer_name": "greeter", "code": code["code"], "code_checksum": code["code_checksum"],
            "code_error": code["code_error"], "compatible_runtime": ["python3.11"], "description": "greetings",
            "license": ""}
    failures = [(f.property, f.reason) for f in LayerVersionProvider().check({}, news).failures]
    assert len(failures) == 1 and failures[0][0] == "code", failures
    assert "escaping its root (zip-slip)" in failures[0][1], failures
