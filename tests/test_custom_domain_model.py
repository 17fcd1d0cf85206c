"""CustomDomain's rules, decided without a host: FC's path matching (exact first, then the longest prefix), the
errors preview gives for bad input (each naming the property and the rule), and the configuration HAProxy gets:
rendered from fragments deterministically, passing Host, path and x-acs-* through, and accepted by `haproxy -c`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from _certs import Authority

import fc_provider as fc
from fc_provider._model import frontdoor as fd
from fc_provider._model.custom_domain import CustomDomainModel, RouteModel, edge_hosts, match
from fc_common.triggers import url_label
from fc_provider._model.validation import UNKNOWN
from fc_provider.custom_domain import CustomDomainProvider

DOMAIN = "api.example.test"
HOSTS = [{"name": "lab-1", "address": "10.0.0.11", "labels": {"front-door": "true"}},
         {"name": "lab-2", "address": "10.0.0.12", "labels": {}}]
FUNCTIONS = [{"function_name": "a", "hosts": ["lab-1", "lab-2"], "timeout": 10},
             {"function_name": "b", "hosts": ["lab-2"], "timeout": 3}]
TRIGGERS = [{"function_name": "a", "trigger_name": "web", "trigger_type": "http"},
            {"function_name": "b", "trigger_name": "web", "trigger_type": "http"},
            {"function_name": "b", "trigger_name": "web-prod", "trigger_type": "http", "qualifier": "prod"}]


def routes(*paths: str) -> list[RouteModel]:
    return [RouteModel(path=p, function_name="a") for p in paths]


def failures(**props: object) -> list[tuple[str, str]]:
    news = {"domain_name": DOMAIN, "functions": FUNCTIONS, "triggers": TRIGGERS, **props}
    result = CustomDomainProvider().check({}, news)
    return [(f.property, f.reason) for f in result.failures]


def test_exact_paths_win_then_the_longest_prefix() -> None:
    table = routes("/*", "/api/*", "/api/v1/*", "/api/v1/login", "/login")
    assert match(table, "/api/v1/login").path == "/api/v1/login"
    assert match(table, "/api/v1/login/x").path == "/api/v1/*"
    assert match(table, "/api/v2").path == "/api/*"
    assert match(table, "/api").path == "/*"  # "/api/*" is below /api/, not /api itself
    assert match(table, "/login").path == "/login"
    assert match(table, "/other").path == "/*"
    assert match(routes("/api/*"), "/other") is None


def test_methods_narrow_a_route() -> None:
    table = [RouteModel(path="/x/*", function_name="a", methods=["GET"]), RouteModel(path="/*", function_name="b")]
    assert match(table, "/x/1", "GET").function_name == "a"
    assert match(table, "/x/1", "POST").function_name == "b"


@pytest.mark.parametrize("props, prop, rule", [
    ({"domain_name": "not a host"}, "domain_name", "not a valid host name"),
    ({"domain_name": "-bad.example.com"}, "domain_name", "not a valid host name"),
    ({"domain_name": "10.0.0.1"}, "domain_name", "not a valid host name"),
    ({"route_config": {"routes": [{"path": "/a", "function_name": "a"}, {"path": "/a", "function_name": "b"}]}},
     "route_config", "two routes have the same path: /a"),
    ({"route_config": {"routes": [{"path": "/a/*/b", "function_name": "a"}]}}, "route_config", "'*' anywhere else"),
    ({"route_config": {"routes": [{"path": "a", "function_name": "a"}]}}, "route_config", "must start with '/'"),
    ({"route_config": {"routes": [{"path": "/a b", "function_name": "a"}]}}, "route_config", "only letters"),
    ({"route_config": {"routes": [{"path": "/x", "function_name": "ghost"}]}}, "route_config",
     "function(s) ghost that this domain does not know"),
    ({"protocol": "HTTPS"}, "cert_config", "cert_config is required"),
    ({"protocol": "FTP"}, "protocol", "protocol"),
    ({"tls_config": {"min_version": "TLSv1.3", "max_version": "TLSv1.2"}}, "tls_config", "below min_version"),
    ({"tls_config": {"cipher_suites": ["TLS_NOPE"]}}, "tls_config", "unknown cipher suite(s) TLS_NOPE"),
    ({"front_door": {"http_port": 0}}, "front_door", "front_door.http_port"),
])
def test_bad_input_fails_at_preview_naming_the_property_and_rule(props: dict, prop: str, rule: str) -> None:
    found = failures(**props)
    assert any(p == prop and rule in r for p, r in found), found


def test_a_route_needs_an_http_trigger_of_its_function_for_its_qualifier() -> None:
    one = {"route_config": {"routes": [{"path": "/x/*", "function_name": "a", "qualifier": "prod"}]}}
    found = failures(**one)
    assert found and found[0][0] == "route_config", found
    assert ("route /x/* -> a (prod): the function has no HTTP trigger for qualifier prod in triggers=" in found[0][1]
            and 'fc.Trigger(trigger_type="http", qualifier="prod")' in found[0][1]), found
    assert "no HTTP trigger for qualifier LATEST" in failures(triggers=[], route_config={"routes": [
        {"path": "/*", "function_name": "a"}]})[0][1]
    timer = [{"function_name": "a", "trigger_name": "tick", "trigger_type": "timer"}]
    assert failures(triggers=timer, route_config={"routes": [{"path": "/*", "function_name": "a"}]})  # not HTTP
    two = TRIGGERS + [{"function_name": "a", "trigger_name": "web2", "trigger_type": "http"}]
    found = failures(triggers=two, route_config={"routes": [{"path": "/*", "function_name": "a"}]})
    assert "several HTTP triggers for qualifier LATEST (web, web2); name one in the route's trigger_name" in \
        found[0][1], found
    assert failures(triggers=two, route_config={"routes": [{"path": "/*", "function_name": "a",
                                                            "trigger_name": "web2"}]}) == []
    found = failures(route_config={"routes": [{"path": "/*", "function_name": "a", "trigger_name": "nope"}]})
    assert "names trigger_name nope, which is not an HTTP trigger of a in triggers= (known: web)" in found[0][1]
    # at a first preview the Trigger resources' outputs may be unknown: the rule waits for them
    unknown = [{"function_name": "a", "trigger_name": UNKNOWN, "trigger_type": "http"}]
    assert failures(triggers=unknown, **one) == []


def test_no_edge_host_is_a_preview_error_naming_the_selector_and_the_hosts() -> None:
    connection = {"hosts": HOSTS, "private_key": "k"}
    found = failures(connection=connection, front_door={"selector": {"role": "edge"}})
    assert found and found[0][0] == "front_door", found
    assert "no host of the fleet matches selector {'role': 'edge'}" in found[0][1]
    assert "lab-1 {'front-door': 'true'}" in found[0][1]
    assert failures(connection=connection) == []  # the default selector: front-door=true
    assert "not part of the fleet" in failures(connection=connection, front_door={"hosts": ["lab-9"]})[0][1]


def test_certificates_are_checked_at_preview_and_the_key_never_quoted() -> None:
    ca = Authority()
    good = ca.issue(DOMAIN)
    base = {"protocol": "HTTPS", "cert_config": {"cert_name": "c", "certificate": good.certificate,
                                                 "private_key": good.private_key}}
    assert failures(**base) == []
    other = ca.other_key()
    mismatch = failures(**{**base, "cert_config": {**base["cert_config"], "private_key": other}})
    assert mismatch[0][0] == "cert_config" and "does not match the certificate" in mismatch[0][1], mismatch
    assert "PRIVATE KEY" not in mismatch[0][1]
    expired = ca.issue(DOMAIN, days=-1, valid_from_days=-10)
    found = failures(**{**base, "cert_config": {"cert_name": "c", "certificate": expired.certificate,
                                                "private_key": expired.private_key}})
    assert "the certificate expired on" in found[0][1], found
    wrong_name = ca.issue("www.example.test")
    found = failures(**{**base, "cert_config": {"cert_name": "c", "certificate": wrong_name.certificate,
                                                "private_key": wrong_name.private_key}})
    assert "is for www.example.test, not api.example.test" in found[0][1], found
    wildcard = ca.issue("*.example.test")
    assert failures(**{**base, "cert_config": {"cert_name": "c", "certificate": wildcard.certificate,
                                               "private_key": wildcard.private_key}}) == []


def test_typed_args_give_the_same_props_as_dicts() -> None:
    typed = fc.CustomDomainArgs(domain_name=DOMAIN, route_config=fc.RouteConfigArgs(routes=[
        fc.PathConfigArgs(path="/a/*", function_name="a", qualifier="prod", methods=["GET"])]),
        tls_config=fc.TlsConfigArgs(min_version="TLSv1.3"), front_door=fc.FrontDoorArgs(hosts=["lab-1"]))
    plain = fc.CustomDomainArgs(domain_name=DOMAIN, route_config={"routes": [
        {"path": "/a/*", "function_name": "a", "qualifier": "prod", "methods": ["GET"]}]},
        tls_config={"min_version": "TLSv1.3", "cipher_suites": []},
        front_door={"hosts": ["lab-1"], "http_port": 80, "https_port": 443})
    for key in ("route_config", "tls_config", "front_door"):
        assert getattr(typed, key) == getattr(plain, key), key
    with pytest.raises(TypeError, match="tls_config takes TlsConfigArgs"):
        fc.CustomDomainArgs(domain_name=DOMAIN, tls_config=fc.FrontDoorArgs())


def model(**extra: object) -> CustomDomainModel:
    return CustomDomainModel.model_validate({
        "domain_name": DOMAIN, "invoke_api": True, "functions": FUNCTIONS, "triggers": TRIGGERS,
        "route_config": {"routes": [{"path": "/*", "function_name": "a"},
                                    {"path": "/b/*", "function_name": "b", "qualifier": "prod"},
                                    {"path": "/b/exact", "function_name": "a", "methods": ["GET", "POST"]}]},
        **extra})


def test_rendered_configuration_routes_in_match_order_and_never_rewrites_host_or_signed_headers(
        tmp_path: Path) -> None:
    hosts = {h["name"]: h for h in HOSTS}
    config = fd.render([fd.fragment(model(), hosts, 9000)])
    assert config == fd.render([fd.fragment(model(), hosts, 9000)])  # deterministic: no-change up stays quiet
    rules = [line.strip() for line in config.splitlines() if line.strip().startswith("use_backend")]
    assert [r.split()[1] for r in rules] == ["fn_a", "fn_b", *[f"rt_{fd.domain_id(DOMAIN)}_r{i}" for i in range(3)]]
    assert "{ path -m str /b/exact } { method GET POST }" in rules[2]
    assert "{ path_beg /b/ }" in rules[3] and "{ path_beg / }" in rules[4]
    # each route goes to its function's HTTP trigger for the route's qualifier, the client's path after its prefix
    assert f"http-request set-path /_fd/{url_label('b', 'web-prod')}%[path]" in config
    assert f"http-request set-path /_fd/{url_label('a', 'web')}%[path]" in config
    assert "set-query" not in config and "set-method" not in config  # method and query as the client sent them
    assert "option forwardfor" in config
    assert "server lab-2 10.0.0.12:9000 check" in config and "track fn_a/lab-2" in config
    assert "timeout server 15s" in config  # a's 10 s plus the margin
    lowered = config.lower()
    assert "set-header host" not in lowered and "del-header" not in lowered and "x-acs" not in lowered
    # the invoke API is passed through: its backends rewrite nothing
    fn_a = config.split("backend fn_a\n")[1].split("\n\n")[0]
    assert "set-path" not in fn_a and "set-query" not in fn_a
    (tmp_path / "haproxy.cfg").write_text(config.replace(fd.STATE_DIR, str(tmp_path)))
    checked = subprocess.run(["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_two_domains_share_a_host_and_each_function_has_one_backend() -> None:
    hosts = {h["name"]: h for h in HOSTS}
    first = fd.fragment(model(), hosts, 9000)
    second = fd.fragment(model(domain_name="www.example.test"), hosts, 9000)
    config = fd.render([second, first])
    assert config == fd.render([first, second])
    assert config.count("backend fn_a\n") == 1 and config.count("frontend fe_80\n") == 1
    assert "-m str www.example.test" in config and "-m str api.example.test" in config


def test_edge_hosts_by_name_or_label() -> None:
    front = CustomDomainModel.model_validate({"domain_name": DOMAIN}).front_door
    assert edge_hosts(front, HOSTS) == ["lab-1"]
