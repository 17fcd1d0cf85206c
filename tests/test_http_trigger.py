"""HTTP triggers on the agent: routing by host name and by path, pass-through to web functions, FC's event for
built-in runtimes, methods, and authType anonymous / function / jwt. Real agent, real containers; the JWTs are
signed here with cryptography and verified by the agent's stdlib code."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path

import pytest
from _agent import SERVER_BASE, TEST_KEY, async_config, deploy, http_trigger, install, invoke_url, post, wait_task
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fc_common.triggers import url_label
from fc_provider._errors import AgentAPIError
from fc_provider._remote import fleetops as ops
from fc_provider._remote.signer import Credentials, sign
from runtime_agent.events import http_replay

EVENT_HANDLER = '''
import base64, json
def handler(event, context):
    e = json.loads(event)
    p = e["rawPath"]
    if p == "/echo":
        return {"statusCode": 200, "headers": {"content-type": "application/json", "set-cookie": ["a=1", "b=2"]},
                "body": json.dumps(e)}
    if p == "/bin":
        return {"statusCode": 201, "headers": {"content-type": "application/octet-stream"}, "isBase64Encoded": True,
                "body": base64.b64encode(bytes(range(256))).decode()}
    if p == "/plain":
        return "hello"
    if p == "/dict":
        return {"a": 1}
    if p == "/bad":
        return {"statusCode": 999}
    raise RuntimeError("boom at " + p)
'''

WEB_APP = SERVER_BASE + '''
import hashlib

class Handler(Base):
    def _any(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("location", "/landed")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if self.path.startswith("/cookies"):
            self.send_response(200)
            self.send_header("set-cookie", "a=1; Path=/")
            self.send_header("set-cookie", "b=2; Path=/")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if self.path.startswith("/upload"):
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("x-sha256", hashlib.sha256(body).hexdigest())
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self._reply(200, json.dumps({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                     "body": body.decode("latin-1")}).encode())

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _any

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("content-length", "5")
        self.end_headers()

ThreadingHTTPServer(("0.0.0.0", int(os.environ["FC_SERVER_PORT"])), Handler).serve_forever()
'''

ALL = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]


@pytest.fixture(scope="module")
def conn(lab_fleet: dict, tmp_path_factory: pytest.TempPathFactory) -> ops.FleetConnection:
    conn = install(lab_fleet, 2)
    tmp = tmp_path_factory.mktemp("http")
    deploy(conn, tmp / "ev", "ev", EVENT_HANDLER)
    deploy(conn, tmp / "web", "web", WEB_APP, runtime="custom.debian12", timeout=10,
           custom_runtime_config={"command": ["python3", "index.py"]})
    return conn


def put_trigger(conn: ops.FleetConnection, function: str, name: str, config: dict, **spec: object) -> dict:
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        return agent.put_trigger(function, name, {"trigger_type": "http", "trigger_config": config, **spec})


def test_web_function_gets_the_request_and_answers_as_is(conn: ops.FleetConnection) -> None:
    record = put_trigger(conn, "web", "site", {"authType": "anonymous", "methods": ALL})
    label = record["url_label"]
    assert label == url_label("web", "site") and record["qualifier"] == "LATEST"
    status, headers, body = http_trigger(conn, label, "PUT", "/a/b%20c?x=1&x=2", b"payload",
                                         {"X-Custom": "yes", "Cookie": "sid=42"})
    seen = json.loads(body)
    assert status == 200 and seen["method"] == "PUT" and seen["path"] == "/a/b%20c?x=1&x=2"
    assert seen["body"] == "payload" and seen["headers"]["X-Custom"] == "yes" and seen["headers"]["Cookie"] == "sid=42"
    assert seen["headers"]["Host"] == f"{label}.fc.local"
    assert seen["headers"]["x-fc-function-name"] == "web" and seen["headers"]["x-fc-trigger-name"] == "site"
    assert seen["headers"]["x-fc-qualifier"] == "LATEST" and "x-fc-request-id" in seen["headers"]
    assert ("x-fc-request-id", seen["headers"]["x-fc-request-id"]) in headers

    status, headers, _ = http_trigger(conn, label, "GET", "/cookies")
    assert [v for k, v in headers if k == "set-cookie"] == ["a=1; Path=/", "b=2; Path=/"]

    status, headers, body = http_trigger(conn, label, "GET", "/redirect")
    assert status == 302 and dict(headers)["location"] == "/landed" and body == b""
    status, headers, _ = http_trigger(conn, label, "GET", "/redirect", by_path=True)
    assert status == 302 and dict(headers)["location"] == f"/_t/{label}/landed"  # kept inside the path form

    blob = bytes(range(256)) * 4096  # 1 MB, every byte value
    status, headers, body = http_trigger(conn, label, "POST", "/upload", blob,
                                         {"Content-Type": "application/octet-stream"})
    assert status == 200 and body == blob and dict(headers)["x-sha256"] == hashlib.sha256(blob).hexdigest()

    status, headers, body = http_trigger(conn, label, "HEAD", "/")
    assert status == 200 and body == b"" and dict(headers)["content-length"] == "5"
    status, _, body = http_trigger(conn, label, "GET", "/deep/path?q=%2F", by_path=True)
    assert status == 200 and json.loads(body)["path"] == "/deep/path?q=%2F"


def test_a_method_outside_methods_is_refused_and_internet_url_can_be_disabled(conn: ops.FleetConnection) -> None:
    label = put_trigger(conn, "web", "readonly", {"authType": "anonymous", "methods": ["GET"],
                                                  "disableURLInternet": True})["url_label"]
    status, headers, body = http_trigger(conn, label, "GET", "/")
    assert status == 403 and json.loads(body)["Code"] == "AccessDenied"
    assert http_trigger(conn, label, "GET", "/", by_path=True)[0] == 200
    status, headers, body = http_trigger(conn, label, "POST", "/", b"x", by_path=True)
    assert status == 405 and json.loads(body)["Code"] == "MethodNotAllowed" and dict(headers)["allow"] == "GET"


def test_event_function_gets_fc_http_event_and_its_answer_becomes_the_response(conn: ops.FleetConnection) -> None:
    label = put_trigger(conn, "ev", "api", {"authType": "anonymous", "methods": ["GET", "POST"]})["url_label"]
    status, headers, body = http_trigger(conn, label, "POST", "/echo?p=1&p=2&q=", "héllo".encode(),
                                         {"Content-Type": "text/plain", "X-Multi": "v1"})
    event = json.loads(body)
    assert status == 200 and [v for k, v in headers if k == "set-cookie"] == ["a=1", "b=2"]
    assert event["version"] == "v1" and event["rawPath"] == "/echo" and event["body"] == "héllo"
    assert event["isBase64Encoded"] is False and event["queryParameters"] == {"p": "1,2", "q": ""}
    assert event["headers"]["X-Multi"] == "v1" and event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["domainPrefix"] == label and event["requestContext"]["requestId"]
    status, _, body = http_trigger(conn, label, "POST", "/echo", bytes([0, 255, 1]),
                                   {"Content-Type": "application/octet-stream"})
    event = json.loads(body)
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == bytes([0, 255, 1])
    status, headers, body = http_trigger(conn, label, "GET", "/bin")
    assert status == 201 and body == bytes(range(256))
    assert http_trigger(conn, label, "GET", "/plain")[2] == b"hello"
    status, headers, body = http_trigger(conn, label, "GET", "/dict")
    assert json.loads(body) == {"a": 1} and dict(headers)["content-type"] == "application/json"
    status, headers, body = http_trigger(conn, label, "GET", "/raise")
    assert status == 502 and dict(headers)["x-fc-error-type"] == "UnhandledInvocationError"
    assert "boom at /raise" in json.loads(body)["errorMessage"]
    status, _, body = http_trigger(conn, label, "GET", "/bad")
    assert status == 500 and json.loads(body)["Code"] == "FunctionResponseMalformed"


def test_async_invocation_type_queues_the_event_and_answers_202(conn: ops.FleetConnection, tmp_path: Path) -> None:
    """X-Fc-Invocation-Type: Async: 202 at once with x-fc-request-id, FC's HTTP event lands in the async queue and
    runs there (a task record); a task function also answers x-fc-async-task-id and takes the caller's task id."""
    label = put_trigger(conn, "ev", "later", {"authType": "anonymous", "methods": ["POST"]})["url_label"]
    status, headers, body = http_trigger(conn, label, "POST", "/echo?n=1", b"queued body",
                                         {"X-Fc-Invocation-Type": "Async", "Content-Type": "text/plain"})
    assert status == 202 and body == b"" and "x-fc-async-task-id" not in dict(headers), (status, body)
    request_id = dict(headers)["x-fc-request-id"]
    done = wait_task(conn, "ev", request_id, "Succeeded", "Failed")  # no task mode: the task id is the request id
    event = json.loads(done["taskPayload"])
    assert done["status"] == "Succeeded" and event["version"] == "v1" and event["rawPath"] == "/echo"
    assert event["body"] == "queued body" and event["queryParameters"] == {"n": "1"}
    assert event["requestContext"]["requestId"] == request_id and done["requestId"] == request_id
    assert json.loads(json.loads(done["returnPayload"])["body"])["body"] == "queued body"  # the function ran it

    deploy(conn, tmp_path / "evtask", "evtask", EVENT_HANDLER)
    async_config(conn, "evtask", async_task=True)
    label = put_trigger(conn, "evtask", "jobs", {"authType": "anonymous", "methods": ["POST"]})["url_label"]
    status, headers, _ = http_trigger(conn, label, "POST", "/echo", b"job",
                                      {"X-Fc-Invocation-Type": "Async", "X-Fc-Async-Task-Id": "job-1"})
    assert status == 202 and dict(headers)["x-fc-async-task-id"] == "job-1"
    assert wait_task(conn, "evtask", "job-1", "Succeeded", "Failed")["status"] == "Succeeded"
    status, _, body = http_trigger(conn, label, "POST", "/echo", b"job",
                                   {"X-Fc-Invocation-Type": "Async", "X-Fc-Async-Task-Id": "job-1"})
    assert status == 409 and json.loads(body)["Code"] == "TaskAlreadyExists", body  # FC's dedupe of task ids
    status, _, body = http_trigger(conn, label, "POST", "/echo", b"x" * (129 * 1024),
                                   {"X-Fc-Invocation-Type": "Async"})
    assert status == 400 and "128 KB" in json.loads(body)["Message"], body



def test_a_web_functions_async_trigger_request_is_replayed_as_it_came(conn: ops.FleetConnection) -> None:
    """A web function's trigger queues the request itself (sealed), and the worker replays it to an instance: the
    method, path, query, headers and body the client sent, with the platform's x-fc-* headers. A payload sealed
    with another key, sent through the invoke API, is an ordinary event (the function gets POST /invoke)."""
    label = put_trigger(conn, "web", "webasync", {"authType": "anonymous", "methods": ["PUT"]})["url_label"]
    status, headers, body = http_trigger(conn, label, "PUT", "/orders/7?express=1", b"queued web body",
                                         {"X-Fc-Invocation-Type": "Async", "X-Custom": "yes",
                                          "X-Fc-Function-Name": "spoofed"})
    assert status == 202 and body == b"", (status, body)
    request_id = dict(headers)["x-fc-request-id"]
    done = wait_task(conn, "web", request_id, "Succeeded", "Failed")
    seen = json.loads(done["returnPayload"])
    assert done["status"] == "Succeeded", done
    assert (seen["method"], seen["path"], seen["body"]) == ("PUT", "/orders/7?express=1", "queued web body")
    assert seen["headers"]["X-Custom"] == "yes" and seen["headers"]["x-fc-request-id"] == request_id
    assert seen["headers"]["x-fc-function-name"] == "web" and seen["headers"]["x-fc-trigger-name"] == "webasync"
    assert seen["headers"]["x-fc-async-task-id"] == request_id  # no task mode: the task id is the request id

    forged = http_replay.seal("not-this-fleets-key", b"DELETE /everything HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
                              b"")
    status, headers, _ = post(invoke_url(conn, "web"), forged, {"x-fc-invocation-type": "Async"})
    assert status == 202
    done = wait_task(conn, "web", dict(headers)["x-fc-request-id"], "Succeeded", "Failed")
    assert json.loads(done["returnPayload"])["path"] == "/invoke"  # delivered as an event, never replayed


def test_cors_config_answers_preflight_and_marks_answers_to_allowed_origins(conn: ops.FleetConnection) -> None:
    """FC's corsConfig: the agent answers a preflight itself (before auth: browsers send no credentials on it, and
    the trigger's methods need not list OPTIONS) and puts its CORS headers on answers to allowed origins; without
    corsConfig a preflight is an OPTIONS request like another and reaches the function."""
    cors = {"allowOrigins": ["https://app.example.com"], "allowHeaders": ["Content-Type", "X-Token"],
            "exposeHeaders": ["X-Sha256"], "allowCredentials": True, "maxAge": 600}
    label = put_trigger(conn, "web", "browser", {"authType": "function", "methods": ["GET", "POST"],
                                                 "corsConfig": cors})["url_label"]
    ask = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "content-type"}
    status, headers, body = http_trigger(conn, label, "OPTIONS", "/upload", headers=ask)
    found = dict(headers)
    assert status == 204 and body == b"", (status, body)
    assert found["access-control-allow-origin"] == "https://app.example.com"
    assert found["access-control-allow-methods"] == "GET, POST" and found["access-control-max-age"] == "600"
    assert found["access-control-allow-headers"] == "Content-Type, X-Token"
    assert found["access-control-allow-credentials"] == "true" and found["vary"] == "Origin"
    status, headers, _ = http_trigger(conn, label, "OPTIONS", "/", headers={**ask, "Origin": "https://evil.example"})
    assert status == 204 and "access-control-allow-origin" not in dict(headers)  # the browser stops there
    status, headers, body = http_trigger(conn, label, "GET", "/", headers={"Origin": "https://app.example.com"})
    assert status == 400 and dict(headers)["access-control-allow-origin"] == "https://app.example.com", body
    status, headers, _ = http_trigger(conn, label, "GET", "/", headers={
        "Origin": "https://app.example.com", **sign(TEST_KEY, "GET", "http://x/")})
    assert status == 200 and dict(headers)["access-control-expose-headers"] == "X-Sha256"
    status, headers, _ = http_trigger(conn, label, "GET", "/", headers={
        "Origin": "https://evil.example", **sign(TEST_KEY, "GET", "http://x/")})
    assert status == 200 and not [k for k, _ in headers if k.startswith("access-control-")]
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent), pytest.raises(AgentAPIError) as err:
        agent.put_trigger("web", "badcors", {"trigger_type": "http", "trigger_config": {
            "methods": ["GET"], "corsConfig": {"allowOrigins": ["*"], "allowCredentials": True}}})
    assert err.value.status == 400 and "corsConfig.allowCredentials" in str(err.value), err.value

    plain = put_trigger(conn, "web", "nocors", {"authType": "anonymous", "methods": ALL})["url_label"]
    status, headers, body = http_trigger(conn, plain, "OPTIONS", "/", headers=ask)
    assert status == 200 and json.loads(body)["method"] == "OPTIONS"  # the function's own business
    assert not [k for k, _ in headers if k.startswith("access-control-")]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(key: rsa.RSAPrivateKey, claims: dict, kid: str = "k1") -> str:
    head = _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
    signed = f"{head}.{_b64(json.dumps(claims).encode())}"
    return signed + "." + _b64(key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256()))


def _jwks(key: rsa.RSAPrivateKey, kid: str = "k1") -> dict:
    numbers = key.public_key().public_numbers()
    def raw(n: int) -> str:
        return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))
    return {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": raw(numbers.n),
                      "e": raw(numbers.e)}]}


def test_jwt_auth_accepts_a_valid_token_and_refuses_missing_expired_and_badly_signed(
        conn: ops.FleetConnection) -> None:
    key, other = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    label = put_trigger(conn, "web", "private", {
        "authType": "jwt", "methods": ["GET"],
        "authConfig": json.dumps({"jwks": _jwks(key), "tokenLookup": "header:Authorization:Bearer,cookie:tok",
                                  "claimPassBy": "header:uid:x-user-id", "whitelist": ["/public*"]})})["url_label"]
    now = int(time.time())
    good = _jwt(key, {"uid": "u-7", "exp": now + 600})
    status, _, body = http_trigger(conn, label, "GET", "/", headers={"Authorization": f"Bearer {good}"})
    assert status == 200 and json.loads(body)["headers"]["x-user-id"] == "u-7"
    assert http_trigger(conn, label, "GET", "/", headers={"Cookie": f"tok={good}"})[0] == 200
    assert http_trigger(conn, label, "GET", "/public/page")[0] == 200  # whitelisted: no token needed
    for headers, reason in [({}, "required"),
                            ({"Authorization": f"Bearer {_jwt(key, {'exp': now - 3600})}"}, "expired"),
                            ({"Authorization": f"Bearer {_jwt(other, {'exp': now + 600})}"}, "signature"),
                            ({"Authorization": "Bearer not.a.jwt"}, "malformed")]:
        status, _, body = http_trigger(conn, label, "GET", "/", headers=headers)
        assert status == 401 and reason in json.loads(body)["Message"], (reason, body)


def test_function_auth_takes_signed_requests_and_refuses_unsigned_ones(conn: ops.FleetConnection) -> None:
    """authType function: the request is verified as the invoke API verifies it (api/auth.py), with its answers."""
    label = put_trigger(conn, "web", "signed", {"authType": "function", "methods": ["GET"]})["url_label"]
    status, _, body = http_trigger(conn, label, "GET", "/")
    assert status == 400 and json.loads(body)["Code"] == "MissingRequiredHeader", body
    status, _, body = http_trigger(conn, label, "GET", "/", headers=sign(TEST_KEY, "GET", "http://x/"))
    assert status == 200, body
    wrong = Credentials(TEST_KEY.access_key_id, "not-the-secret")
    status, _, body = http_trigger(conn, label, "GET", "/", headers=sign(wrong, "GET", "http://x/"))
    assert status == 403 and json.loads(body)["Code"] == "SignatureNotMatch", body


def test_bad_trigger_specs_are_refused_naming_the_field(conn: ops.FleetConnection) -> None:
    cases = [
        ("web", {"trigger_type": "http", "trigger_config": {"methods": ["FETCH"]}}, 400, "methods"),
        ("web", {"trigger_type": "http", "trigger_config": {"methods": ["GET"], "authType": "jwt",
                                                            "authConfig": "{not json"}}, 400, "authConfig"),
        ("web", {"trigger_type": "http", "trigger_config": {"methods": ["GET"], "authType": "jwt",
                                                            "authConfig": {"jwks": {"keys": []}}}}, 400,
         "no usable key"),
        ("web", {"trigger_type": "timer", "trigger_config": {"cronExpression": "0 61 * * * *"}}, 400, "minute"),
        ("absent", {"trigger_type": "http", "trigger_config": {"methods": ["GET"]}}, 404, "does not exist"),
    ]
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        for function, spec, status, words in cases:
            with pytest.raises(AgentAPIError) as err:
                agent.put_trigger(function, "bad", spec)
            assert err.value.status == status and words in str(err.value), (spec, err.value)


def test_at_most_50_triggers_per_function_and_they_go_with_it(conn: ops.FleetConnection, tmp_path: Path) -> None:
    deploy(conn, tmp_path, "many", EVENT_HANDLER)
    with ops.agent_session(conn, conn.hosts[0]) as (_ssh, agent):
        for i in range(50):
            agent.put_trigger("many", f"t{i}", {"trigger_type": "http", "trigger_config": {"methods": ["GET"]}})
        with pytest.raises(AgentAPIError) as err:
            agent.put_trigger("many", "t50", {"trigger_type": "http", "trigger_config": {"methods": ["GET"]}})
        assert err.value.code == "TriggerLimitExceeded" and "50" in str(err.value)
        agent.delete_function("many")
        assert agent.get_trigger("many", "t0") is None
