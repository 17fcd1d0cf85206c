"""CustomDomain through the real Pulumi CLI on the lab: `up` installs and configures HAProxy on the labelled edge
host and the domain routes to the functions' HTTP triggers on every host (public traffic to an anonymous one, signed
requests to a function one); the official SDK invokes through it; bad input fails at preview naming the property;
a no-change `up` does not reload; refresh shows a configuration edited on the host and the next `up` repairs
it; a route change reloads; destroy leaves the edge host clean."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from _agent import TEST_KEY, grant_lab, post
from _certs import Authority
from _frontdoor import BODY
from _pulumi import REPO, PulumiFailed, Stack
from alibabacloud_fc20230330 import models
from alibabacloud_fc20230330.client import Client
from alibabacloud_tea_openapi.utils_models import Config

from fc_lab import Lab
from fc_provider._model import frontdoor as fd
from fc_provider._remote.signer import sign

PROGRAM = REPO / "tests" / "programs" / "custom_domain"
DOMAIN = "api.example.test"
ROUTES = json.dumps({"routes": [{"path": "/*", "function_name": "hello"},
                                {"path": "/shout/*", "function_name": "shout"}]})


def workers(lab: Lab) -> list[str]:
    """The HAProxy master's workers on the edge host (new ones after every reload)."""
    out = lab.run("lab-1", ["sh", "-c", f"ps -o pid= --ppid $(cat {fd.STATE_DIR}/haproxy.pid)"],
                  capture_output=True, text=True, check=True).stdout
    return sorted(out.split())


@pytest.fixture(scope="module")
def stack(lab: Lab, fleet_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("custom-domain")
    for name, source in (("hello", "return 'hello:' + body_of(event)[1]"),
                         ("shout", "return body_of(event)[1].upper()")):
        (work / "code" / name).mkdir(parents=True)
        (work / "code" / name / "index.py").write_text(f"{BODY}def handler(event, context):\n    {source}\n")
    stack = Stack(work, "domain", program=PROGRAM)
    stack.config(fleetFile=str(fleet_file), codeDir=str(work / "code"), domain=ROUTES)
    stack.up()
    grant_lab(lab)  # the signing key tests and the SDK use
    # The edge host's address, read once: every request below goes there (one `pulumi stack output` less each).
    stack.edge = stack.outputs()["edge_addresses"][0]  # type: ignore[attr-defined]
    stack.destroyed = False  # type: ignore[attr-defined]
    yield stack
    if not stack.destroyed:  # type: ignore[attr-defined]  # the last test destroys it (and checks what is left)
        stack.destroy()


def recorded_state(stack: Stack) -> dict:
    """The domain's front_door_state as the stack's state holds it (refresh updates resources, not stack outputs)."""
    resources = json.loads(stack.export_state())["deployment"]["resources"]
    return next(r for r in resources if r["urn"].endswith("::api"))["outputs"]["front_door_state"]


def through(stack: Stack, path: str, body: bytes = b"", signed: bool = False) -> tuple[int, bytes]:
    """POST ``path`` to the domain. A route goes to its function's HTTP trigger: hello's is anonymous (public),
    shout's is authType function, so ``signed`` signs the request as sent (Host and path reach the agent
    unchanged). The invoke API's own paths are always signed."""
    edge = stack.edge
    headers = {"Host": DOMAIN}
    if signed or path.startswith(fd.INVOKE_PREFIX):
        headers = sign(TEST_KEY, "POST", f"http://{edge}{path}", body, headers)
    status, _headers, answer = post(f"http://{edge}{path}", body, headers, key=None)
    return status, answer


def browse(stack: Stack, path: str) -> tuple[str, str]:
    """A GET as a browser sends it (curl, the domain resolved to the edge host, nothing signed): (status line,
    body)."""
    edge = stack.edge
    out = subprocess.run(["curl", "-s", "-i", "--max-time", "30", "--resolve", f"{DOMAIN}:80:{edge}",
                          f"http://{DOMAIN}{path}"], capture_output=True, text=True, check=True).stdout
    head, _, body = out.partition("\n\n")  # text mode reads CRLF as a newline
    return head.splitlines()[0], body


def test_up_serves_the_domain_from_the_labelled_edge_host(stack: Stack, lab_fleet: dict) -> None:
    outputs = stack.outputs()
    lab1 = next(h for h in lab_fleet["hosts"] if h["name"] == "lab-1")
    assert outputs["urls"] == [f"http://{DOMAIN}/"]
    assert (outputs["edge_hosts"], outputs["edge_addresses"]) == (["lab-1"], [lab1["address"]])
    assert outputs["front_door_state"] == {"lab-1": "in sync"}
    # public web traffic through hello's anonymous trigger: unsigned, as a browser sends it
    assert browse(stack, "/any/page") == ("HTTP/1.1 200 OK", "hello:")
    assert through(stack, "/any", b"x") == (200, b"hello:x")
    # shout's trigger is authType function: unsigned is refused, signed as sent is served
    status, answer = through(stack, "/shout/it", b"x")
    assert status == 400 and b"MissingRequiredHeader" in answer, answer
    assert through(stack, "/shout/it", b"x", signed=True) == (200, b"X")
    assert through(stack, "/2023-03-30/functions/shout/invocations", b"sdk") == (200, b"SDK")


def test_the_official_sdk_invokes_through_the_front_door(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    edge = stack.edge
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
    def failed_preview(*config: str) -> str:
        """`pulumi preview` with ``config`` (key=value, saved to the stack's config first: one CLI call)."""
        with pytest.raises(PulumiFailed) as failed:
            stack.run("preview", "--diff", *(arg for pair in config for arg in ("--config", pair)))
        return str(failed.value)

    cert_set = False
    try:
        text = failed_preview("domain=" + json.dumps({
            "domain_name": "not_a host", "front_door": {"selector": {"role": "edge"}},
            "routes": [{"path": "/a", "function_name": "hello"}, {"path": "/a", "function_name": "shout"}]}))
        assert "not a valid host name" in text, text
        assert "two routes have the same path: /a" in text, text
        assert "no host of the fleet matches selector {'role': 'edge'}" in text, text
        assert "Traceback" not in text, text
        ca = Authority()
        issued = ca.issue(DOMAIN)
        (tmp_path / "cert.pem").write_text(issued.certificate)
        (tmp_path / "key.pem").write_text(ca.other_key())
        cert_set = True
        text = failed_preview("domain=" + json.dumps({"protocol": "HTTPS",
                                                      "routes": [{"path": "/*", "function_name": "ghost"}]}),
                              f"certFile={tmp_path / 'cert.pem'}", f"keyFile={tmp_path / 'key.pem'}")
        assert "private_key does not match the certificate" in text, text
        assert "PRIVATE KEY" not in text
        stack.unset("certFile", "keyFile")
        cert_set = False
        # hello's only HTTP trigger is on LATEST: a route to its "prod" has nothing to go through
        text = failed_preview("domain=" + json.dumps({"routes": [{"path": "/v/*", "function_name": "hello",
                                                                  "qualifier": "prod"}]}))
        assert "route /v/* -> hello (prod): the function has no HTTP trigger for qualifier prod" in text, text
    finally:
        if cert_set:
            stack.unset("certFile", "keyFile", check=False)
        stack.config(domain=ROUTES)


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
    out = stack.up()  # the drift is a planned update of the domain (what `pulumi preview` would show), then done
    assert re.search(r"Resources:\s+~ 1 updated", out), out
    assert recorded_state(stack) == {"lab-1": "in sync"}
    assert lab.run("lab-1", ["cat", fd.CONFIG], capture_output=True, text=True, check=True).stdout == original


def test_a_route_change_reloads_and_destroy_leaves_the_edge_host_clean(stack: Stack, lab: Lab) -> None:
    before = workers(lab)
    stack.run("up", "--yes", "--skip-preview", "--config", "domain=" + json.dumps({"routes": [
        {"path": "/*", "function_name": "hello"}, {"path": "/shout/*", "function_name": "shout"},
        {"path": "/shout/quietly", "function_name": "hello"}]}))
    assert workers(lab) != before
    assert through(stack, "/shout/quietly", b"x") == (200, b"hello:x")
    assert through(stack, "/shout/loud", b"x", signed=True) == (200, b"X")
    stack.destroy()
    stack.destroyed = True  # type: ignore[attr-defined]
    left = lab.run("lab-1", ["sh", "-c", f"ls {fd.CONFIG_DIR} {fd.STATE_DIR} 2>&1; ps -eo args | grep -c "
                                         f"'[h]aproxy -W -D -p {fd.STATE_DIR}'"],
                   capture_output=True, text=True).stdout
    assert "No such file" in left and left.strip().endswith("0"), left
