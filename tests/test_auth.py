"""Every invoke-API request is verified (runtime_agent/api/auth.py), tested with the official FC SDK
(alibabacloud-fc20230330, pinned in pyproject's test extra) and with raw requests: a valid key is answered, a
wrong secret, an unknown key, a stale date, a replayed nonce and a policy refusal each get FC's error code; unsigned
curl is refused; GetFunction and ListFunctions answer the SDK with FC's field names."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import time
from typing import Iterator

import pytest
from _agent import TEST_KEY, deploy, grant, install, post
from alibabacloud_fc20230330 import models
from alibabacloud_fc20230330.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils_models import Config

from fc_common import acs3
from fc_common.policy import problems
from fc_lab import Lab
from fc_provider._remote import fleetops as ops
from fc_provider._remote.signer import Credentials

ECHO = "def handler(event, context):\n    return b'echo:' + event\n"


@pytest.fixture(scope="module")
def agent_conn(lab: Lab, lab_fleet: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ops.FleetConnection]:
    conn = install(lab_fleet, 0)
    for name in ("auth-a", "auth-b", "other-c"):
        deploy(conn, tmp_path_factory.mktemp(name), name, ECHO)
    yield conn
    ops.uninstall_agent(conn, conn.hosts[0])


def sdk(conn: ops.FleetConnection, key: Credentials = TEST_KEY) -> Client:
    return Client(Config(access_key_id=key.access_key_id, access_key_secret=key.access_key_secret,
                         endpoint=f"{conn.hosts[0].address}:{conn.invoke_port}", protocol="http",
                         read_timeout=60000, connect_timeout=10000))


def sdk_invoke(client: Client, name: str, body: bytes = b"x") -> bytes:
    response = client.invoke_function(name, models.InvokeFunctionRequest(body=body))
    assert response.status_code == 200
    return response.body.read()


def sdk_error(call) -> ClientException:
    with pytest.raises(ClientException) as caught:
        call()
    return caught.value


def new_key() -> Credentials:
    return Credentials("LTAI" + secrets.token_hex(10), secrets.token_urlsafe(24))


def url_of(conn: ops.FleetConnection, name: str) -> str:
    return f"http://{conn.hosts[0].address}:{conn.invoke_port}/2023-03-30/functions/{name}/invocations"


def test_the_sdk_invokes_with_a_valid_key(agent_conn: ops.FleetConnection) -> None:
    assert sdk_invoke(sdk(agent_conn), "auth-a", b"hello") == b"echo:hello"


def test_a_wrong_secret_is_signature_not_match(agent_conn: ops.FleetConnection) -> None:
    wrong = Credentials(TEST_KEY.access_key_id, "not-" + TEST_KEY.access_key_secret)
    error = sdk_error(lambda: sdk_invoke(sdk(agent_conn, wrong), "auth-a"))
    assert (error.status_code, error.code) == (403, "SignatureNotMatch")


def test_an_unknown_key_is_invalid_access_key_id(agent_conn: ops.FleetConnection) -> None:
    stranger = new_key()
    error = sdk_error(lambda: sdk_invoke(sdk(agent_conn, stranger), "auth-a"))
    assert (error.status_code, error.code) == (403, "InvalidAccessKeyID")
    assert stranger.access_key_id in error.message


def test_a_stale_date_and_a_replayed_nonce_are_refused(agent_conn: ops.FleetConnection) -> None:
    url, path = url_of(agent_conn, "auth-a"), "/2023-03-30/functions/auth-a/invocations"
    stale = acs3.sign("POST", path, {}, {}, b"x", TEST_KEY.access_key_id, TEST_KEY.access_key_secret,
                      now=time.time() - 16 * 60)
    status, _, body = post(url, b"x", stale, key=None)
    assert (status, json.loads(body)["Code"]) == (403, "RequestTimeTooSkewed")
    once = acs3.sign("POST", path, {}, {}, b"x", TEST_KEY.access_key_id, TEST_KEY.access_key_secret)
    assert post(url, b"x", once, key=None)[0] == 200
    status, _, body = post(url, b"x", once, key=None)
    assert (status, json.loads(body)["Code"]) == (403, "SignatureNonceUsed")


def test_a_key_allowed_only_function_a_is_refused_b(agent_conn: ops.FleetConnection) -> None:
    only_a = grant(agent_conn, new_key(), {"actions": ["fc:InvokeFunction"],
                                           "resources": ["acs:fc:*:*:functions/auth-a"]})
    client = sdk(agent_conn, only_a)
    assert sdk_invoke(client, "auth-a", b"mine") == b"echo:mine"
    error = sdk_error(lambda: sdk_invoke(client, "auth-b"))
    assert (error.status_code, error.code) == (403, "AccessDenied")
    assert "fc:InvokeFunction on acs:fc:local:fleet:functions/auth-b" in error.message
    # A function that does not exist is refused the same way: a key learns nothing beyond its policy.
    assert sdk_error(lambda: sdk_invoke(client, "no-such-fn")).code == "AccessDenied"
    assert sdk_error(lambda: client.get_function("auth-a", models.GetFunctionRequest())).code == "AccessDenied"


def test_unsigned_curl_is_refused(agent_conn: ops.FleetConnection) -> None:
    out = subprocess.run(["curl", "-sS", "-X", "POST", "-d", "x", "-w", "\n%{http_code}", url_of(agent_conn, "auth-a")],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    body, status = out.rsplit("\n", 1)
    assert status == "400"
    error = json.loads(body)
    assert error["Code"] == "MissingRequiredHeader" and "Authorization" in error["Message"] and error["RequestId"]


@pytest.mark.parametrize(("header", "code", "words"), [
    ({"authorization": "ACS3-HMAC-SHA256 Credential=x"}, "InvalidArgument", "malformed Authorization"),
    ({"authorization": "HMAC-MD5 Credential=a,SignedHeaders=b,Signature=c"}, "InvalidArgument",
     "unsupported signature algorithm 'HMAC-MD5'"),
    ({"x-acs-date": None}, "MissingRequiredHeader", "x-acs-date"),
    ({"x-acs-date": "yesterday"}, "InvalidArgument", "is not a UTC time"),
    ({"x-acs-security-token": "sts"}, "InvalidArgument", "issues no STS tokens"),
])
def test_bad_signatures_get_an_error_naming_what_is_wrong(agent_conn: ops.FleetConnection, header: dict, code: str,
                                                          words: str) -> None:
    path = "/2023-03-30/functions/auth-a/invocations"
    headers = acs3.sign("POST", path, {}, {}, b"x", TEST_KEY.access_key_id, TEST_KEY.access_key_secret)
    for name, value in header.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    status, _, body = post(url_of(agent_conn, "auth-a"), b"x", headers, key=None)
    error = json.loads(body)
    assert status in (400, 403) and error["Code"] == code and words in error["Message"], error
    assert sdk_invoke(sdk(agent_conn), "auth-a") == b"echo:x"  # the agent is unharmed


def test_revoking_a_key_refuses_it_at_once(agent_conn: ops.FleetConnection) -> None:
    key = grant(agent_conn, new_key())
    assert sdk_invoke(sdk(agent_conn, key), "auth-a") == b"echo:x"
    with ops.agent_session(agent_conn, agent_conn.hosts[0]) as (_ssh, agent):
        assert agent.delete_access_key(key.access_key_id)
    assert sdk_error(lambda: sdk_invoke(sdk(agent_conn, key), "auth-a")).code == "InvalidAccessKeyID"


def test_keys_are_0600_files_and_never_listed_with_their_secret(agent_conn: ops.FleetConnection, lab: Lab) -> None:
    host = agent_conn.hosts[0].name
    mode = lab.run(host, ["stat", "-c", "%a", f"/etc/fc-agent/access-keys/{TEST_KEY.access_key_id}.json"],
                   capture_output=True, text=True, check=True).stdout.strip()
    folder = lab.run(host, ["stat", "-c", "%a", "/etc/fc-agent/access-keys"], capture_output=True, text=True,
                     check=True).stdout.strip()
    assert (mode, folder) == ("600", "700")
    with ops.agent_session(agent_conn, agent_conn.hosts[0]) as (_ssh, agent):
        listed = agent.access_keys()
        assert TEST_KEY.access_key_secret not in json.dumps(listed)
        status, error = agent.raw("PUT", "/v1/access-keys/LTAIbadpolicy1")  # no body: no secret
        assert status == 400
    with ops.agent_session(agent_conn, agent_conn.hosts[0]) as (_ssh, agent):
        bad = agent._request("PUT", "/v1/access-keys/LTAIbadpolicy1",
                             {"secret": "s" * 20, "policy": {"actions": ["fc:InvokeFuncton"], "resources": ["*"]}})
    assert bad[0] == 400 and "unknown action 'fc:InvokeFuncton'" in bad[1]["Message"], bad


def test_get_function_and_list_functions_through_the_sdk(agent_conn: ops.FleetConnection) -> None:
    client = sdk(agent_conn)
    fn = client.get_function("auth-a", models.GetFunctionRequest()).body
    assert (fn.function_name, fn.runtime, fn.handler, fn.memory_size, fn.state) == (
        "auth-a", "python3.11", "index.handler", 128, "Active")
    assert fn.function_arn == "acs:fc:local:fleet:functions/auth-a" and fn.code_checksum and fn.created_time
    assert sdk_error(lambda: client.get_function("nope", models.GetFunctionRequest())).code == "FunctionNotFound"

    listed = client.list_functions(models.ListFunctionsRequest(prefix="auth-", limit=1)).body
    assert [f.function_name for f in listed.functions] == ["auth-a"] and listed.next_token
    rest = client.list_functions(models.ListFunctionsRequest(prefix="auth-", limit=1,
                                                             next_token=listed.next_token)).body
    assert [f.function_name for f in rest.functions] == ["auth-b"] and not rest.next_token
    everything = client.list_functions(models.ListFunctionsRequest()).body
    assert [f.function_name for f in everything.functions] == ["auth-a", "auth-b", "other-c"]
    bad = sdk_error(lambda: client.list_functions(models.ListFunctionsRequest(limit=1000)))
    assert bad.code == "InvalidArgument" and "limit" in bad.message

    invoke_only = grant(agent_conn, new_key(), {"actions": ["fc:InvokeFunction"], "resources": ["*"]})
    refused = sdk_error(lambda: sdk(agent_conn, invoke_only).list_functions(models.ListFunctionsRequest()))
    assert refused.code == "AccessDenied" and "fc:ListFunctions" in refused.message


def test_a_body_past_the_limit_is_entity_too_large(agent_conn: ops.FleetConnection) -> None:
    path = "/2023-03-30/functions/auth-a/invocations"
    headers = acs3.sign("POST", path, {}, {}, b"", TEST_KEY.access_key_id, TEST_KEY.access_key_secret)
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {33 * 1024 * 1024}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n")
    with socket.create_connection((agent_conn.hosts[0].address, agent_conn.invoke_port), timeout=30) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400") and b'"EntityTooLarge"' in answer, answer[:300]


def test_policy_rules_name_the_field() -> None:
    assert problems({"actions": ["fc:InvokeFunction"], "resources": ["acs:fc:*:*:functions/a-*"]}) == []
    found = dict(problems({"actions": ["fc:Invoke", "s3:*"], "resources": ["functions/a", "acs:fc:*:*:fn/x"]}))
    assert "unknown action 'fc:Invoke'" in found["policy.actions[0]"]
    assert "malformed action 's3:*'" in found["policy.actions[1]"]
    assert "malformed resource 'functions/a'" in found["policy.resources[0]"]
    assert "malformed resource 'acs:fc:*:*:fn/x'" in found["policy.resources[1]"]
    assert dict(problems({"actions": []}))["policy.actions"] == "must be a non-empty list of strings"


def test_the_verifiers_prepared_hmac_is_the_signature_clients_compute() -> None:
    # The agent checks signatures with HMAC states prepared once per key (acs3.KeyedSignature); clients sign with
    # acs3.signature. Secrets shorter than, equal to and longer than SHA-256's 64-byte block.
    for size in (16, 30, 63, 64, 65, 200):
        secret = secrets.token_bytes(size)
        keyed = acs3.KeyedSignature(secret)
        for canonical in ("", "POST\n/\n\n\n\n", "GET\n/2023-03-30/functions\nlimit=2\nhost:h\n\nhost\n" * 3):
            assert keyed(canonical) == acs3.signature(secret, canonical)
            assert keyed(canonical) == keyed(canonical)  # the prepared states are copied, never consumed


def test_one_nonce_claimed_from_many_threads_at_once_is_accepted_once() -> None:
    import threading

    from runtime_agent.api.auth import NonceCache

    cache = NonceCache()
    for round_ in range(50):
        start, wins = threading.Barrier(8), []

        def claim() -> None:
            start.wait()
            wins.append(cache.claim("LTAIkey", f"nonce-{round_}", 1_000.0 + round_, 10.0))

        threads = [threading.Thread(target=claim) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(wins) == [False] * 7 + [True]
    # Past their expiry, entries leave (pruned at most once a second) and the nonce may be used again.
    assert len(cache) == 50
    assert cache.claim("LTAIkey", "late", 5_000.0, 2_000.0)
    assert len(cache) == 1 and cache.claim("LTAIkey", "nonce-3", 6_000.0, 2_001.5)


def test_a_signature_outside_ascii_or_hex_is_signature_not_match_not_a_crash(tmp_path) -> None:
    from runtime_agent.api.auth import Authenticator
    from runtime_agent.errors import AgentError
    from runtime_agent.state.keys import KeyStore

    keys = KeyStore(tmp_path / "keys")
    keys.put(TEST_KEY.access_key_id, {"secret": TEST_KEY.access_key_secret})
    auth = Authenticator(keys)
    path = "/2023-03-30/functions/f/invocations"
    good = acs3.sign("POST", path, {}, {}, b"x", TEST_KEY.access_key_id, TEST_KEY.access_key_secret)
    assert auth.verify("POST", path, good, b"x").key_id == TEST_KEY.access_key_id
    for forged in ("\xe9" * 64, "g" * 64, "0" * 63 + "\xe9", "ab"):
        headers = acs3.sign("POST", path, {}, {}, b"x", TEST_KEY.access_key_id, TEST_KEY.access_key_secret)
        headers["authorization"] = headers["authorization"].rsplit("=", 1)[0] + "=" + forged
        with pytest.raises(AgentError) as refused:
            auth.verify("POST", path, headers, b"x")
        assert refused.value.code in ("SignatureNotMatch", "InvalidArgument"), (forged, refused.value.code)
