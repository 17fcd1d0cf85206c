"""Layers through the real Pulumi CLI on the lab fleet: one LayerVersion shared by two functions (its package on
each host once), and the rules that fail at preview: a runtime the layer excludes, an ARN of no layer, an ARN of
another account, an archive escaping its root."""

from __future__ import annotations

import zipfile
from pathlib import Path

from _agent import grant_lab, post
from _pulumi import REPO, Stack

from fc_lab import Lab

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

    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as zf:
        zf.writestr("../../etc/evil", "x")
    stack.config(layerCode=str(slip), runtime="python3.11")
    stack.unset("extraLayerArn")
    assert "escaping its root (zip-slip)" in _preview_fails(stack)

    stack.config(layerCode=str(layer))
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

        stack.config(extraLayerArn="acs:fc:local:fleet:layers/nothing-here/versions/4")  # looked up on the fleet
        assert "layers[1]: layer acs:fc:local:fleet:layers/nothing-here/versions/4 does not exist" in \
            _preview_fails(stack)
    finally:
        stack.destroy()
