"""The front door on a lab host: real HAProxy (Debian's package, installed by scripts/setup.sh) configured by the
provider's own edge-host operations, in front of real agents on the 3 lab hosts. Routing with FC's path matching,
what passes through unchanged, HTTPS with a test CA, validation before replacement, graceful reloads, retries and
failover. The resource around it, through the Pulumi CLI, is in test_custom_domain_e2e."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest
from _agent import deploy, install, wait_for
from _certs import Authority
from _frontdoor import (
    BODY,
    CAPTURE_SERVER,
    HELD_FUNCTION,
    Edge,
    echo_function,
    gone,
    headers_of,
    https_post,
    listens,
    release_held,
    server_status,
    stats,
)

from fc_common.triggers import url_label
from fc_lab import Lab
from fc_lab import _host as lab_host
from fc_provider._model import frontdoor as fd
from fc_provider._remote import fleetops as ops
from fc_provider._remote.frontdoor import FrontDoorConfigInvalid

ALL = ["lab-1", "lab-2", "lab-3"]
FUNCTIONS = [{"function_name": "echo", "hosts": ALL, "timeout": 3},
             {"function_name": "upper", "hosts": ALL, "timeout": 3},
             {"function_name": "slow", "hosts": ALL, "timeout": 20}]
ANONYMOUS = {"authType": "anonymous", "methods": ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]}
SIGNED = {**ANONYMOUS, "authType": "function"}
# Every routed function's HTTP trigger (a route goes through it); echo has a second one that needs a signature.
TRIGGERS = [{"function_name": n, "trigger_name": "web", "trigger_type": "http"} for n in ("echo", "upper", "slow")]
TRIGGERS.append({"function_name": "echo", "trigger_name": "signed", "trigger_type": "http"})
API = {"domain_name": "api.example.test", "invoke_api": True, "functions": FUNCTIONS, "triggers": TRIGGERS,
       "route_config": {"routes": [
           {"path": "/*", "function_name": "echo", "trigger_name": "web"}, {"path": "/up/*", "function_name": "upper"},
           {"path": "/up/exact", "function_name": "echo", "trigger_name": "web"},
           {"path": "/slow", "function_name": "slow"},
           {"path": "/private/*", "function_name": "echo", "trigger_name": "signed"}]}}
UPPER = BODY + "def handler(event, context):\n    return body_of(event)[1].upper()\n"


@pytest.fixture(scope="module")
def agents(lab: Lab, lab_fleet: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list]:
    conns = []
    for index in range(3):
        conn = install(lab_fleet, index)
        work = tmp_path_factory.mktemp(f"fd-code-{index}")
        deploy(conn, work / "echo", "echo", echo_function(f"host-{index + 1}"))
        deploy(conn, work / "upper", "upper", UPPER)
        deploy(conn, work / "slow", "slow", HELD_FUNCTION, timeout=20)
        for trigger in TRIGGERS:
            with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
                agent.put_trigger(trigger["function_name"], trigger["trigger_name"], {
                    "trigger_type": "http", "trigger_config": SIGNED if trigger["trigger_name"] == "signed"
                    else ANONYMOUS})
        conns.append(conn)
    yield conns
    for conn in conns:  # later modules expect hosts without these functions
        ops.uninstall_agent(conn, conn.hosts[0])


@pytest.fixture(scope="module")
def edge(lab_fleet: dict, agents: list) -> Iterator[Edge]:
    front = Edge(lab_fleet, "lab-1")
    front.withdraw_everything()  # whatever an interrupted run left
    yield front
    front.withdraw_everything()


@pytest.fixture(scope="module")
def capture(lab: Lab, lab_fleet: dict) -> Iterator[dict[str, subprocess.Popen]]:
    """Stand-ins for an invoke port on lab-2 (closes every connection unanswered) and lab-3 (echoes what came)."""
    procs = {}
    for name, mode in (("lab-2", "rude"), ("lab-3", "polite")):
        address = next(h["address"] for h in lab_fleet["hosts"] if h["name"] == name)
        spec = lab._spec_by_name(name)
        procs[name] = subprocess.Popen([*lab_host.nsenter(spec), "python3", "-c", CAPTURE_SERVER, address, "9100",
                                        mode], stdout=subprocess.PIPE, text=True)
        wait_for(lambda: _listening(address, 9100), f"the stand-in on {name} to listen", timeout=60)
    yield procs
    for proc in procs.values():
        proc.kill()
        proc.wait()


def _listening(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=1).close()
        return True
    except OSError:
        return False


def test_haproxy_from_setup_is_seen_by_every_lab_host(lab: Lab, lab_fleet: dict) -> None:
    for host in lab_fleet["hosts"]:
        out = lab.run(host["name"], ["haproxy", "-v"], capture_output=True, text=True, check=True).stdout
        assert out.startswith("HAProxy version 2."), out


def test_routes_reach_the_routed_function_exact_first_then_longest_prefix(edge: Edge) -> None:
    assert edge.serve(API) == "started"
    domain = API["domain_name"]
    status, headers, body = edge.get(domain, "/anything/at/all", b"x")
    assert status == 200 and body.startswith(b"host-") and body.endswith(b":x"), (status, body)
    assert edge.get(domain, "/up/a/b", b"abc")[2] == b"ABC"
    assert edge.get(domain, "/up/exact", b"abc")[2].endswith(b":abc")  # the exact route wins over /up/*
    assert edge.get(domain, "/up", b"abc")[2].endswith(b":abc")  # /up/* is below /up/, so /* takes /up
    assert edge.get(domain.upper() + ":80", "/up/x", b"q")[2] == b"Q"  # Host matched case-insensitively, port ignored
    # the invoke API of the domain's functions, passed through unchanged
    assert edge.get(domain, "/2023-03-30/functions/upper/invocations", b"abc")[2] == b"ABC"
    status, headers, body = edge.get("nobody.example.test", "/x")
    assert status == 404 and json.loads(body)["Code"] == "DomainNameNotFound", body
    assert headers["x-fc-request-id"] == json.loads(body)["RequestId"]
    # one request id from the client to the function and back
    assert edge.get(domain, "/x", b"", {"x-fc-request-id": "req-from-client"})[1]["x-fc-request-id"] == \
        "req-from-client"
    tags = Counter(edge.get(domain, "/x", b"")[2].split(b":")[0] for _ in range(30))
    assert set(tags) == {b"host-1", b"host-2", b"host-3"}, tags  # every host that runs echo serves it


def test_public_traffic_reaches_an_anonymous_trigger_and_a_function_trigger_needs_a_signature(edge: Edge) -> None:
    domain = API["domain_name"]
    # a browser-like client: curl, the domain resolved to the edge host, no signature, GET
    out = subprocess.run(["curl", "-s", "-i", "--max-time", "30", "--resolve", f"{domain}:80:{edge.address}",
                          f"http://{domain}/shop/item%20one?color=red&size=2"], capture_output=True, text=True,
                         check=True).stdout
    head, _, body = out.partition("\n\n")  # text mode reads CRLF as a newline
    lines = {k.lower(): v for k, _, v in (line.partition(": ") for line in head.splitlines()[1:])}
    assert head.startswith("HTTP/1.1 200") and body.startswith("host-"), out
    # the function sees the path the client sent to the domain, and its query
    assert lines["x-path"] == "/shop/item%20one" and json.loads(lines["x-query"]) == {"color": "red", "size": "2"}
    assert edge.get(domain, "/up/x", b"abc")[2] == b"ABC"  # unsigned POST, another function
    # a route to a trigger whose authType is function: refused unsigned, served when signed as sent to the domain
    status, _h, body = edge.get(domain, "/private/x", b"p")
    assert status in (400, 401) and json.loads(body)["Code"] == "MissingRequiredHeader", body
    status, headers, body = edge.get(domain, "/private/x", b"p", signed=True)
    assert status == 200 and body.endswith(b":p") and headers["x-path"] == "/private/x", (status, body)


def test_host_path_and_signed_headers_pass_through_and_the_route_qualifier_is_sent(
        edge: Edge, capture: dict, lab_fleet: dict) -> None:
    probe = {"domain_name": "probe.example.test", "invoke_api": True,
             "functions": [{"function_name": "probe", "hosts": ["lab-3"], "timeout": 3}],
             "triggers": [{"function_name": "probe", "trigger_name": "hook", "trigger_type": "http",
                           "qualifier": "prod"}],
             "route_config": {"routes": [{"path": "/hook/*", "function_name": "probe", "qualifier": "prod"}]}}
    assert edge.serve(probe, invoke_port=9100) == "reloaded"
    signed = {"x-acs-date": "2026-12-01T09:00:00Z", "x-acs-signature-nonce": "n-1",
              "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb924", "x-acs-version": "2023-03-30",
              "authorization": "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host;x-acs-date,Signature=abc",
              "x-forwarded-for": "203.0.113.7", "content-type": "application/octet-stream"}
    target = "/2023-03-30/functions/probe/invocations?qualifier=v1"
    status, _h, body = edge.get("probe.example.test", target, b"evt", signed)
    assert status == 200, body
    seen = json.loads(body)
    got = headers_of(body)
    assert seen["target"] == target and seen["method"] == "POST" and seen["body"] == "evt"
    assert got["host"] == ["probe.example.test"]
    for key, value in signed.items():
        if key != "x-forwarded-for":
            assert got[key] == [value], key
    gateway = lab_fleet["hosts"][0]["address"].rsplit(".", 1)[0] + ".1"  # the machine, as the lab hosts see it
    assert ", ".join(got["x-forwarded-for"]) == f"203.0.113.7, {gateway}", got["x-forwarded-for"]
    assert got["x-fc-request-id"][0]
    # a custom-domain route: the HTTP trigger of the route's qualifier, the client's method, path and query after
    # the trigger's front-door prefix, Host and signed headers kept
    status, _h, body = edge.get("probe.example.test", "/hook/a/b?x=1", b"evt", signed)
    seen = json.loads(body)
    assert seen["target"] == f"/_fd/{url_label('probe', 'hook')}/hook/a/b?x=1" and seen["method"] == "POST", seen
    got = headers_of(body)
    assert got["host"] == ["probe.example.test"] and got["authorization"] == [signed["authorization"]]
    assert edge.apply_raw("probe.example.test", None) == "reloaded"


def test_idempotent_requests_are_retried_on_another_host_and_posts_are_not(edge: Edge, capture: dict) -> None:
    flaky = {"domain_name": "flaky.example.test", "invoke_api": True,
             "functions": [{"function_name": "flaky", "hosts": ["lab-2", "lab-3"], "timeout": 3}]}
    assert edge.serve(flaky, invoke_port=9100) == "reloaded"
    path = "/2023-03-30/functions/flaky/invocations"

    def send(method: str) -> int:  # GET is not what post() sends; no signed header is involved here
        req = urllib.request.Request(f"http://{edge.address}{path}", method=method,
                                     headers={"Host": "flaky.example.test"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code

    gets = [send("GET") for _ in range(10)]
    posts = [send("POST") for _ in range(10)]
    assert edge.apply_raw("flaky.example.test", None) == "reloaded"
    rude = capture["lab-2"]
    rude.kill()
    hits = Counter(line.strip() for line in rude.stdout.read().splitlines())
    assert gets == [200] * 10, gets
    assert hits["GET"] >= 1, hits  # GETs did reach the host that drops them, and were retried on the other
    assert posts.count(502) == hits["POST"] >= 1, (posts, hits)  # a POST that reached a host is never resent


def test_https_with_a_test_ca_and_a_minimum_tls_version(edge: Edge, tmp_path: Path) -> None:
    ca = Authority()
    leaf = ca.issue("secure.example.test")
    secure = {"domain_name": "secure.example.test", "protocol": "HTTPS",
              "cert_config": {"cert_name": "secure", "certificate": leaf.certificate, "private_key": leaf.private_key},
              "tls_config": {"min_version": "TLSv1.3"}, "functions": FUNCTIONS[:1], "triggers": TRIGGERS[:1],
              "route_config": {"routes": [{"path": "/*", "function_name": "echo"}]}}
    assert edge.serve(secure) == "reloaded"
    ca_file = ca.write(tmp_path / "ca.pem")
    status, body, version = https_post(edge.address, "secure.example.test", "/x", ca_file, b"hi")
    assert (status, version) == (200, "TLSv1.3") and body.endswith(b":hi"), (status, body, version)
    with pytest.raises(ssl.SSLError):
        https_post(edge.address, "secure.example.test", "/x", ca_file, b"hi", max_version=ssl.TLSVersion.TLSv1_2)
    assert json.loads(edge.get("secure.example.test", "/x")[2])["Code"] == "DomainNameNotFound"  # HTTPS only
    cert_file = fd.fragment(fd.CustomDomainModel.model_validate(secure), edge.hosts, 9000)["tls"]["cert_file"]
    assert edge.run(["stat", "-c", "%a %U", cert_file]).split() == ["600", "root"]
    readable = edge.run(["sh", "-c", f"cat {fd.CONFIG} {fd.DOMAINS_DIR}/*.json"])
    assert "PRIVATE KEY" not in readable and "secure.example.test" in readable


def test_a_configuration_that_fails_validation_never_replaces_the_running_one(edge: Edge) -> None:
    before = edge.state()
    broken = edge.fragment(API)
    broken.update(https=True, tls={"cert_file": "/nonexistent/cert.pem", "cert_name": "x", "min_version": "TLSv1.2",
                                   "max_version": None, "ciphers": "", "ciphersuites": ""})
    with pytest.raises(FrontDoorConfigInvalid, match="failed validation, the running one was kept"):
        edge.apply_raw(API["domain_name"], broken)
    after = edge.state()
    assert (after.config, after.fragments, after.workers) == (before.config, before.fragments, before.workers)
    assert edge.get(API["domain_name"], "/up/x", b"ok")[2] == b"OK"


def test_an_unchanged_domain_does_not_reload(edge: Edge) -> None:
    before = edge.state().workers
    assert edge.serve(API) == "unchanged"
    assert edge.state().workers == before


def test_a_reload_keeps_a_long_running_request_and_refuses_no_connection(edge: Edge, lab: Lab) -> None:
    domain = API["domain_name"]
    slow: dict = {}
    # held until released below, after the reload (bounded: 18 s, under the function's timeout): the old worker must
    # still be serving it when the new one has taken over
    runner = threading.Thread(target=lambda: slow.update(answer=edge.get(domain, "/slow", b"18")))
    runner.start()
    slow_backend = (f"rt_{fd.domain_id(domain)}_r0", "BACKEND")  # exact routes come first: /slow, then /up/exact
    wait_for(lambda: int(stats(edge)[slow_backend]["scur"]) == 1 or slow, "the slow request to be in flight")
    assert not slow, slow
    old_workers = edge.state().workers
    stop = threading.Event()
    during: list[int] = []

    def stream() -> None:
        while not stop.is_set() and len(during) < 400:
            during.append(edge.get(domain, "/up/x", b"s")[0])

    streamer = threading.Thread(target=stream)
    streamer.start()
    changed = {**API, "route_config": {"routes": [*API["route_config"]["routes"],
                                                  {"path": "/new", "function_name": "upper"}]}}
    assert edge.serve(changed) == "reloaded"
    after = edge.state().workers
    assert not slow, "the long request ended before the reload was done: nothing was shown"
    assert set(after) - set(old_workers), "no new worker after the reload"
    old_still_serving = set(old_workers) & set(after)
    release_held(lab, ALL, "slow")
    runner.join(timeout=30)
    stop.set()
    streamer.join(timeout=30)
    assert slow["answer"][0] == 200 and slow["answer"][2] == b"released", slow  # held through the reload
    assert old_still_serving, "the old worker was gone while its request was in flight"
    assert during and set(during) == {200}, Counter(during)
    assert edge.get(domain, "/new", b"n")[2] == b"N"


def test_a_host_known_down_stays_down_across_a_reload(edge: Edge, lab: Lab) -> None:
    """lab-3's invoke port stops answering (its packets dropped: each check waits out its timeout, so a new worker
    that did not know would take two failed checks, seconds, to mark it down, and send it requests meanwhile); once
    HAProxy marks it down, a route change reloads, and the new worker starts with it down (the state saved before
    the reload) and sends it nothing."""
    domain, victim = API["domain_name"], "lab-3"
    drop = ["INPUT", "-i", "eth0", "-p", "tcp", "--dport", "9000", "-j", "DROP"]
    lab.run(victim, ["iptables", "-I", *drop[:1], "1", *drop[1:]], check=True)
    try:
        wait_for(lambda: server_status(edge)[("fn_echo", victim)].startswith("DOWN"), "HAProxy to mark lab-3 down")
        changed = {**API, "route_config": {"routes": [*API["route_config"]["routes"],
                                                      {"path": "/newer", "function_name": "upper"}]}}
        assert edge.serve(changed) == "reloaded"
        saved = edge.run(["cat", f"{fd.STATE_DIR}/server-state"])
        assert any(line.split()[1:4:2] == ["fn_echo", victim] and line.split()[5] == "0"  # srv_op_state 0: down
                   for line in saved.splitlines()[2:]), saved
        rows = stats(edge)  # the new worker's, right after the reload
        assert rows[("fn_echo", victim)]["status"].startswith("DOWN"), rows[("fn_echo", victim)]
        statuses = Counter(edge.get(domain, f"/x{i}", b"")[0] for i in range(30))
        rows = stats(edge)
        sent = {k: (r["stot"], r["econ"]) for k, r in rows.items() if k[1] == victim and k[0].startswith("rt_")}
        assert statuses == {200: 30}, statuses
        assert all(v == ("0", "0") for v in sent.values()), sent  # no request, no connection attempt
    finally:
        lab.run(victim, ["iptables", "-D", *drop], check=True)
    wait_for(lambda: server_status(edge)[("fn_echo", victim)] == "UP", "lab-3 to be up again")


def test_failover_when_an_agent_dies_and_then_its_network_is_cut(edge: Edge, lab: Lab, lab_fleet: dict,
                                                                 agents: list) -> None:
    """A steady stream (40 requests a second, 320 in all) through the front door while lab-3's agent is killed
    (SIGKILL) and then its network cut: only the requests in flight at the kill may fail, counted per second."""
    domain, victim = API["domain_name"], "lab-3"
    edge.serve(API)  # as the earlier tests left it, or on its own
    for _ in range(12):
        assert edge.get(domain, "/warm", b"")[0] == 200  # an instance on every host
    total, rate, kill_at, cut_at = 320, 40.0, 80, 160
    results: list[tuple[int, int]] = []
    lock = threading.Lock()
    in_flight = [0]
    marks: dict[str, int] = {}
    supervisor_pid = int(lab.run(victim, ["cat", "/var/lib/fc-agent/supervisor.pid"], capture_output=True,
                                 text=True, check=True).stdout)
    os.kill(supervisor_pid, 9)  # the agent's death below must stay a death: nothing restarts it
    agent_pid = int(lab.run(victim, ["cat", "/var/lib/fc-agent/agent.pid"], capture_output=True, text=True,
                            check=True).stdout)
    assert b"runtime_agent" in Path(f"/proc/{agent_pid}/cmdline").read_bytes()
    start = time.monotonic()

    def one(index: int) -> None:
        time.sleep(max(0.0, start + index / rate - time.monotonic()))
        if index == kill_at:
            with lock:  # no request starts while the agent dies (its sockets live until the process is gone)
                marks["in_flight_at_kill"] = in_flight[0]
                os.kill(agent_pid, 9)
                wait_for(lambda: gone(agent_pid), "the killed agent to be gone", timeout=30)
                # and its listening socket: a dying process's threads can hold it open for a moment after the
                # process shows as a zombie, and the kernel still accepts connections into it, to reset them when
                # it closes. A request that lands there is in flight at the crash (see the allowance below).
                wait_for(lambda: not listens(lab, victim), "the killed agent's socket to be closed", timeout=30)
        if index == cut_at:
            lab.run(victim, ["iptables", "-I", "INPUT", "1", "-i", "eth0", "-j", "DROP"], check=True)
            lab.run(victim, ["iptables", "-I", "OUTPUT", "1", "-o", "eth0", "-j", "DROP"], check=True)
        with lock:
            in_flight[0] += 1
        status = edge.get(domain, "/f", b"")[0]
        with lock:
            in_flight[0] -= 1
            results.append((int(time.monotonic() - start), status))

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(one, range(total)))
        rows = stats(edge)
        states = {k: r["status"] for k, r in rows.items() if k[1] not in ("FRONTEND", "BACKEND")}
        print("failover: the victim's counters", {k[0]: {c: r[c] for c in ("stot", "econ", "eresp", "wretr",
                                                                             "wredis", "connect", "reuse",
                                                                             "srv_abrt")}
                                                  for k, r in rows.items() if k[1] == victim and r["stot"] != "0"})
    finally:
        lab.run(victim, ["iptables", "-D", "INPUT", "-i", "eth0", "-j", "DROP"])
        lab.run(victim, ["iptables", "-D", "OUTPUT", "-o", "eth0", "-j", "DROP"])
        install(lab_fleet, 2)  # the agent back (its functions are in its store)
    print("failover: statuses", Counter(status for _, status in results))
    errors = Counter(second for second, status in results if status != 200)
    per_second = {s: (sum(1 for t, _ in results if t == s), errors.get(s, 0)) for s in sorted({t for t, _ in results})}
    print("failover: second -> (requests, errors):", per_second, "in flight at the kill:", marks)
    assert len(results) == total
    # Only requests in flight at the kill may fail: a POST that had reached the host is never sent again. Nothing
    # else: every request is a new client connection, and http-reuse safe never sends a first request on an idle
    # server connection (the victim's counters show reuse 0), so none was written to a connection of the dead
    # agent; a connection to it once its socket is closed is refused and retried on another host.
    kill_second = int(kill_at / rate)
    assert sum(n for s, n in errors.items() if s != kill_second) == 0, (per_second, marks)
    assert errors.get(kill_second, 0) <= marks["in_flight_at_kill"], (per_second, marks)
    assert states[("fn_echo", victim)].startswith("DOWN"), states
