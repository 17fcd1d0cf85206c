"""fc.Trigger through the real Pulumi CLI: examples/http_app (Flask + gunicorn) browsed through its anonymous HTTP
trigger; outputs, no-change up, in-place update vs replace, drift found by refresh and repaired; bad configs fail
at preview naming the property."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import time
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Iterator
from urllib.parse import urlencode, urlsplit

import pytest
from _fleet_agents import agent
from _pulumi import REPO, PulumiFailed, Stack

from fc_lab import Lab
from fc_provider.trigger import TriggerProvider


class Browser:
    """A cookie-keeping client for one site, reached at a host's address with the trigger's host name."""

    def __init__(self, address: str, port: int, host: str) -> None:
        self.address, self.port, self.host = address, port, host
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None
                ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.address, self.port, timeout=60)
        try:
            sent = {"Host": self.host, **(headers or {})}
            if self.cookies:
                sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            pairs = [(k.lower(), v) for k, v in resp.getheaders()]
            for key, value in pairs:
                if key == "set-cookie":
                    for name, morsel in SimpleCookie(value).items():
                        self.cookies[name] = morsel.value
            return resp.status, pairs, resp.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def site(lab: Lab, fleet_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    work = tmp_path_factory.mktemp("httpapp")
    stack = Stack(work, "httpapp", program=REPO / "examples" / "http_app")
    stack.config(fleetFile=str(fleet_file))
    stack.up()
    yield {"stack": stack, "outputs": stack.outputs()}
    stack.destroy()


def browser(outs: dict, fleet: dict) -> Browser:
    url = urlsplit(outs["url_internet"])
    return Browser(fleet["hosts"][0]["address"], url.port or 80, url.hostname)


def triggers_on_hosts(lab: Lab, fleet: dict) -> dict[str, dict | None]:
    found = {}
    for host in fleet["hosts"]:
        with agent(lab, fleet, host["name"]) as (_ssh, client):
            found[host["name"]] = client.get_trigger("http-app", "site")
    return found


def test_outputs_have_fc_names(site: dict, lab_fleet: dict) -> None:
    outs = site["outputs"]
    assert outs["trigger_id"] == "http-app:site"
    assert re.fullmatch(r"http://http-app-[0-9a-f]{10}\.fc\.local:9000/", outs["url_internet"]), outs
    label = outs["host"].split(".")[0]
    assert outs["url_intranet"] == f"http://{lab_fleet['hosts'][0]['address']}:9000/_t/{label}/"


def test_the_flask_site_is_browsable_through_its_trigger(site: dict, lab_fleet: dict) -> None:
    web = browser(site["outputs"], lab_fleet)
    status, _, page = web.request("GET", "/")
    assert status == 200 and b"Sign in" in page
    status, _, page = web.request("POST", "/login", b"", {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and b"a name is required" in page  # the form's own validation
    status, headers, _ = web.request("POST", "/login", urlencode({"name": "ada"}).encode(),
                                     {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 302 and dict(headers)["location"] == "/" and "session" in web.cookies
    status, _, _ = web.request("POST", "/notes", urlencode({"text": "hello <b>"}).encode(),
                               {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 302
    status, _, page = web.request("GET", "/")  # the session cookie is kept across requests
    assert b"Signed in as <b>ada</b>" in page and b"ada: hello &lt;b&gt;" in page
    status, _, page = web.request("GET", "/no/such/page")
    assert status == 404 and b"Not Found" in page  # Flask's own 404
    blob = bytes(range(256)) * 4096
    status, _, body = web.request("PUT", "/files/blob.bin", blob, {"Content-Type": "application/octet-stream"})
    assert status == 200 and json.loads(body) == {"name": "blob.bin", "size": len(blob),
                                                  "sha256": hashlib.sha256(blob).hexdigest()}
    status, _, body = web.request("GET", "/files/blob.bin")
    assert status == 200 and body == blob
    status, headers, _ = web.request("GET", "/prefs")
    cookies = [v.split(";")[0] for k, v in headers if k == "set-cookie"]
    assert cookies == ["theme=dark", "lang=en"]
    status, _, body = web.request("PATCH", "/")
    assert status == 405 and json.loads(body)["Code"] == "MethodNotAllowed"


def test_refresh_finds_a_missing_trigger_up_repairs_it_and_a_no_change_up_touches_no_host(
        site: dict, lab: Lab, lab_fleet: dict) -> None:
    stack = site["stack"]
    with agent(lab, lab_fleet, "lab-2") as (_ssh, client):
        assert client.delete_trigger("http-app", "site")
    refresh = stack.run("refresh", "--yes", "--diff").stdout
    assert "1 updated" in refresh, refresh
    repair = stack.up()  # the plan after the refresh: the trigger updated in place (put back on lab-2)
    assert re.search(r"~ 1 updated", repair) and "replace" not in repair, repair
    before = triggers_on_hosts(lab, lab_fleet)
    assert all(before.values()), before
    out = stack.up()  # nothing left to change: no host is touched
    assert re.search(r"Resources:\s+4 unchanged", out), out
    assert triggers_on_hosts(lab, lab_fleet) == before  # same last_modified_time everywhere


def test_config_and_description_update_in_place_and_qualifier_replaces(site: dict, lab: Lab, lab_fleet: dict,
                                                                       named: Stack) -> None:
    """A second trigger of the example's function, named by its function name (no Function resource)."""
    trigger = {"name": "extra", "function": "http-app", "type": "http", "description": "first",
               "config": {"authType": "anonymous", "methods": ["GET"]}}
    named.config(triggers=json.dumps([trigger]))
    named.up()
    named.config(triggers=json.dumps([{**trigger, "description": "second",
                                       "config": {"authType": "anonymous", "methods": ["GET", "POST"]}}]))
    update = named.up(diff=True)  # what it changed, property by property, as `preview --diff` plans it
    assert re.search(r"~ 1 updated", update) and "replace" not in update, update
    assert re.search(r"~ description\s*: \"first\" => \"second\"", update), update
    with agent(lab, lab_fleet, "lab-1") as (_ssh, client):
        record = client.get_trigger("http-app", "extra")
    assert record["description"] == "second" and record["trigger_config"]["methods"] == ["GET", "POST"]
    named.config(triggers=json.dumps([{**trigger, "qualifier": "prod"}]))
    assert re.search(r"\+-1 replaced", named.up()), "the qualifier change did not replace the trigger"
    with agent(lab, lab_fleet, "lab-1") as (_ssh, client):
        assert client.get_trigger("http-app", "extra")["qualifier"] == "prod"
    # The trigger stays: the module's `named` fixture destroys the stack (the next tests replace its triggers).


@pytest.fixture(scope="module")
def named(fleet_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("named"), "named", program=REPO / "tests" / "programs" / "trigger")
    stack.config(fleetFile=str(fleet_file))
    yield stack
    stack.destroy()


BAD_CONFIGS = [
    ("timer", {"cronExpression": "0 61 * * * *"}, "trigger_config: cronExpression: field minute '61'"),
    ("timer", {"cronExpression": "* * * * *"}, "has 5 fields; FC's has 6"),
    ("timer", {"cronExpression": "CRON_TZ=Mars/Olympus 0 0 4 * * *"}, "Mars/Olympus is not a known time zone"),
    ("http", {"methods": ["GET", "FETCH"]}, "trigger_config: methods.1: Input should be"),
    ("http", {"authType": "jwt", "authConfig": {"jwks": "{not json"}}, "authConfig.jwks: is not valid JSON"),
    ("http", {"authType": "jwt", "authConfig": {"jwks": {"keys": [{"kty": "EC"}]}}}, "has no usable key"),
    ("http", {"corsConfig": {"allowOrigins": ["*"], "allowCredentials": True}},
     "corsConfig: allowCredentials: cannot be true with allowOrigins '*'"),
    ("queue", {}, "trigger_type: Input should be"),
]


@pytest.mark.parametrize(("trigger_type", "config", "words"), BAD_CONFIGS)
def test_bad_trigger_config_is_refused_by_check_naming_the_property(trigger_type: str, config: dict,
                                                                    words: str) -> None:
    """The provider's check, which Pulumi calls at preview (the CLI's rendering of it: the test below)."""
    result = TriggerProvider().check({}, {"function_name": "any", "trigger_name": "bad", "trigger_type": trigger_type,
                                          "trigger_config": config, "qualifier": "LATEST", "description": ""})
    reasons = " | ".join(f"{f.property}: {f.reason}" for f in result.failures)
    assert words in reasons, reasons


def test_a_bad_trigger_config_fails_at_preview_naming_the_property(named: Stack) -> None:
    trigger_type, config, words = BAD_CONFIGS[0]
    named.config(triggers=json.dumps([{"name": "bad", "function": "any", "type": trigger_type, "config": config}]))
    with pytest.raises(PulumiFailed) as failed:
        named.preview()
    text = str(failed.value)
    assert words in text, text
    assert "Traceback" not in text


def test_a_trigger_for_a_function_that_does_not_exist_fails_naming_it(named: Stack) -> None:
    named.config(triggers=json.dumps([{"name": "orphan", "function": "no-such-fn", "type": "http",
                                       "config": {"authType": "anonymous"}}]))
    with pytest.raises(PulumiFailed) as failed:
        named.up()
    text = str(failed.value)
    assert "function: function no-such-fn does not exist on any host of the fleet" in text, text
    assert "trigger.py" not in text  # Pulumi's own frames only (brief_errors): none of the provider's


def _ticks(lab: Lab, fleet: dict) -> list[str]:
    ticks = []
    for host in fleet["hosts"]:
        with agent(lab, fleet, host["name"]) as (_ssh, client):
            for entry in client.logs(function="cron-report"):
                ticks += re.findall(r"^tick (\S+) from every-five-minutes: from the test$", entry["log"], re.M)
    return ticks


def test_the_cron_example_fires_once_per_tick_and_enable_false_stops_it(lab: Lab, lab_fleet: dict,
                                                                        fleet_file: Path, tmp_path: Path) -> None:
    stack = Stack(tmp_path, "cron", program=REPO / "examples" / "cron")
    stack.config(fleetFile=str(fleet_file), schedule="*/2 * * * * *", payload="from the test")
    try:
        stack.up()
        outs = stack.outputs()
        assert outs["trigger_id"] == "cron-report:every-five-minutes" and len(outs["hosts"]) == 3
        deadline = time.monotonic() + 30
        while len(ticks := _ticks(lab, lab_fleet)) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(ticks) >= 4 and len(set(ticks)) == len(ticks), ticks  # once per tick, 3 hosts
        stack.config(enable="false")
        disabled = stack.up()
        assert re.search(r"~ 1 updated", disabled) and "replace" not in disabled, disabled  # in place
        stopped = len(_ticks(lab, lab_fleet))
        time.sleep(5)
        assert len(_ticks(lab, lab_fleet)) == stopped
    finally:
        stack.destroy()
