"""CustomDomain through the real Pulumi CLI on the lab: `up` installs and configures HAProxy on the labelled edge
host and the domain routes to the functions on every host; the official SDK invokes through it; bad input fails at preview naming the property;
a no-change `up` does not reload; refresh shows a configuration edited on the host and the next `up` repairs
it; a route change reloads; destroy leaves the edge host clean."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Iterator

import pytest
from _agent import TEST_KEY, grant_lab, post
from _certs import Authority
from _pulumi import REPO, PulumiFailed, Stack
from alibabacloud_fc20230330 import models
from alibabacloud_fc20230330.client import Client
from alibabacloud_tea_openapi.utils_models import Config

from fc_lab import Lab
from fc_provider._model import frontdoor as fd
from fc_provider._remote.signer import sign

PROGRAM = REPO / "tests" / "programs" / "custom_domain"
DOMAIN = "api.example.test"


def workers(lab: Lab) -> list[str]:
    """The HAProxy master's workers on the edge host (new ones after every reload)."""
    out = lab.run("lab-1", ["sh", "-c", f"ps -o pid= --ppid $(cat {fd.STATE_DIR}/haproxy.pid)"],
                  capture_output=True, text=True, check=True).stdout
    return sorted(out.split())


@pytest.fixture(scope="module")
def stack(lab: Lab, fleet_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("custom-domain")
    for name, source in (("hello", "return 'hello:' + event.decode()"), ("shout", "return event.decode().upper()")):
        (work / "code" / name).mkdir(parents=True)
        (work / "code" / name / "index.py").write_text(f"def handler(event, context):\n    {source}\n")
    stack = Stack(work, "domain", program=PROGRAM)
    stack.config(fleetFile=str(fleet_file), codeDir=str(work / "code"),
                 domain=json.dumps({"routes": [{"path": "/*", "function_name": "hello"},
                                               {"path": "/shout/*", "function_name": "shout"}]}))
    stack.up()
    grant_lab(lab)  # the signing key tests and the SDK use
    yield stack
    stack.destroy()


def recorded_state(stack: Stack) -> dict:
    """The domain's front_door_state as the stack's state holds it (refresh updates resources, not stack outputs)."""
    resources = json.loads(stack.export_state())["deployment"]["resources"]
    return next(r for r in resources if r["urn"].endswith("::api"))["outputs"]["front_door_state"]


def through(stack: Stack, path: str, body: bytes = b"", function: str | None = None) -> tuple[int, bytes]:
    """POST ``path`` to the domain. A route rewrites the request to ``function``'s invoke API, which verifies
    signatures: the client signs that rewritten request (fd.route_target), as no unsigned request is served. Without
    ``function`` the path is sent as the invoke API's own (passed through unchanged) and signed as sent."""
    edge = stack.outputs()["edge_addresses"][0]
    if function is None:
        signed = sign(TEST_KEY, "POST", f"http://{edge}{path}", body, {"Host": DOMAIN})
    else:
        target = fd.route_target(function, "LATEST")
        signed = sign(TEST_KEY, "POST", f"http://{edge}{target.path}?{target.query}", body, {"Host": DOMAIN})
    status, _headers, answer = post(f"http://{edge}{path}", body, signed, key=None)
    return status, answer


def test_up_serves_the_domain_from_the_labelled_edge_host(stack: Stack, lab_fleet: dict) -> None:
    outputs = stack.outputs()
    lab1 = next(h for h in lab_fleet["hosts"] if h["name"] == "lab-1")
    assert outputs["urls"] == [f"http://{DOMAIN}/"]
    assert (outputs["edge_hosts"], outputs["edge_addresses"]) == (["lab-1"], [lab1["address"]])
    assert outputs["front_door_state"] == {"lab-1": "in sync"}
    assert through(stack, "/any", b"x", "hello") == (200, b"hello:x")
    assert through(stack, "/shout/it", b"x", "shout") == (200, b"X")
    status, _headers, answer = post(f"http://{outputs['edge_addresses'][0]}/any", b"x", {"Host": DOMAIN}, key=None)
    assert status == 400 and b"MissingRequiredHeader" in answer, answer  # nothing unsigned gets through
    assert through(stack, "/2023-03-30/functions/shout/invocations", b"sdk") == (200, b"SDK")


def test_the_official_sdk_invokes_through_the_front_door(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    edge = stack.outputs()["edge_addresses"][0]
    resolve = socket.getaddrinfo

    def dns(host: str, *args: object, **kwargs: object) -> object:  # the domain's DNS record: the edge host
        return resolve(edge if host == DOMAIN else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", dns)
    client = Client(Config(access_key_id=TEST_KEY.access_key_id, access_key_secret=TEST_KEY.access_key_secret,
                           endpoint=DOMAIN, protocol="http", read_timeout=60000, connect_timeout=10000))
    response = client.invoke_function("shout", models.InvokeFunctionRequest(body=b"sdk"))
    assert response.status_code == 200
    assert response.body.read() == b"SDK"


def test_bad_input_fails_at_preview_naming_each_property(stack: Stack, tmp_path: Path) -> None:
    stack.config(domain=json.dumps({"domain_name": "not_a host", "front_door": {"selector": {"role": "edge"}},
                                    "routes": [{"path": "/a", "function_name": "hello"},
                                               {"path": "/a", "function_name": "shout"}]}))
    try:
        with pytest.raises(PulumiFailed) as failed:
            stack.preview()
        text = str(failed.value)
        assert "not a valid host name" in text, text
        assert "two routes have the same path: /a" in text, text
        assert "no host of the fleet matches selector {'role': 'edge'}" in text, text
        assert "Traceback" not in text, text
        ca = Authority()
        issued = ca.issue(DOMAIN)
        (tmp_path / "cert.pem").write_text(issued.certificate)
        (tmp_path / "key.pem").write_text(ca.other_key())
        stack.config(domain=json.dumps({"protocol": "HTTPS", "routes": [{"path": "/*", "function_name": "ghost"}]}),
                     certFile=str(tmp_path / "cert.pem"), keyFile=str(tmp_path / "key.pem"))
        with pytest.raises(PulumiFailed) as failed:
            stack.preview()
        text = str(failed.value)
        assert "private_key does not match the certificate" in text, text
        assert "PRIVATE KEY" not in text
    finally:
        stack.run("config", "rm", "certFile")
        stack.run("config", "rm", "keyFile")
        stack.config(domain=json.dumps({"routes": [{"path": "/*", "function_name": "hello"},
                                                   {"path": "/shout/*", "function_name": "shout"}]}))


def test_a_no_change_up_does_not_reload(stack: Stack, lab: Lab) -> None:
    before = workers(lab)
    out = stack.up()
    assert "updated" not in out.split("Resources:")[1], out
    assert workers(lab) == before


def test_refresh_shows_a_configuration_edited_on_the_host_and_up_repairs_it(stack: Stack, lab: Lab) -> None:
    original = lab.run("lab-1", ["cat", fd.CONFIG], capture_output=True, text=True, check=True).stdout
    lab.run("lab-1", ["sh", "-c", f"echo '# edited by hand' >> {fd.CONFIG}"], check=True)
    stack.run("refresh", "--yes")
    assert recorded_state(stack) == {"lab-1": "drift: haproxy.cfg was changed on this host"}
    assert "1 to update" in stack.preview()
    stack.up()
    assert recorded_state(stack) == {"lab-1": "in sync"}
    assert lab.run("lab-1", ["cat", fd.CONFIG], capture_output=True, text=True, check=True).stdout == original


def test_a_route_change_reloads_and_destroy_leaves_the_edge_host_clean(stack: Stack, lab: Lab) -> None:
    before = workers(lab)
    stack.config(domain=json.dumps({"routes": [{"path": "/*", "function_name": "hello"},
                                               {"path": "/shout/*", "function_name": "shout"},
                                               {"path": "/shout/quietly", "function_name": "hello"}]}))
    stack.up()
    assert workers(lab) != before
    assert through(stack, "/shout/quietly", b"x", "hello") == (200, b"hello:x")
    assert through(stack, "/shout/loud", b"x", "shout") == (200, b"X")
    stack.destroy()
    left = lab.run("lab-1", ["sh", "-c", f"ls {fd.CONFIG_DIR} {fd.STATE_DIR} 2>&1; ps -eo args | grep -c "
                                         f"'[h]aproxy -W -D -p {fd.STATE_DIR}'"],
                   capture_output=True, text=True).stdout
    assert "No such file" in left and left.strip().endswith("0"), left
    stack.up()  # the fixture destroys again at the end
