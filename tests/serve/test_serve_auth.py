"""API keys (serve/auth.py), without Serve: parsing MEMORYLAB_API_KEYS, its precedence over the scenario, and
the KeyRing that maps an Authorization header to a tenant."""

from __future__ import annotations

import pytest

from memorylab.serve.auth import ENV_VAR, AuthConfigError, KeyRing, parse_keys, resolve_keys


def test_parse_keys_maps_each_key_to_its_tenant():
    keys = parse_keys(" acme:acme-key-1 , globex:globex-key-2,,acme:acme-key-3 ")
    assert keys == {"acme-key-1": "acme", "globex-key-2": "globex", "acme-key-3": "acme"}
    assert parse_keys("") == {}
    assert parse_keys("acme:part:of:the:key") == {"part:of:the:key": "acme"}, "a key may hold colons"
    assert parse_keys("acme:same-key-1,acme:same-key-1") == {"same-key-1": "acme"}


@pytest.mark.parametrize("spec,words,secret", [
    ("acme-only-a-tenant", ["entry 1", "tenant:key"], None),
    ("acme:good-key-123,globex:", ["entry 2", "tenant:key"], "good-key-123"),
    (":no-tenant-key-1", ["entry 1"], "no-tenant-key-1"),
    ("ac me:good-key-123", ["entry 1", "ac me"], "good-key-123"),
    ("acme:short7!", ["entry 1", "acme", "shorter than 8"], "short7!"),
    ("acme:shared-key-1,globex:shared-key-1", ["entry 2", "two tenants"], "shared-key-1"),
])
def test_parse_keys_errors_name_the_entry_never_the_key(spec, words, secret):
    with pytest.raises(AuthConfigError) as err:
        parse_keys(spec)
    message = str(err.value)
    assert message.startswith(ENV_VAR), message
    for word in words:
        assert word in message, f"{word!r} missing from {message!r}"
    if secret:
        assert secret not in message, f"the error shows a key: {message!r}"


def test_environment_overrides_the_scenario_entirely():
    scenario = [("acme", "scenario-key-1")]
    assert resolve_keys(scenario, environ={}) == {"scenario-key-1": "acme"}
    assert resolve_keys(scenario, environ={ENV_VAR: "globex:env-key-123"}) == {"env-key-123": "globex"}
    assert resolve_keys(scenario, environ={ENV_VAR: ""}) == {}, "set but empty: no keys, not the scenario's"
    with pytest.raises(AuthConfigError):
        resolve_keys(scenario, environ={ENV_VAR: "broken"})


def test_resolve_keys_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "acme:from-env-key-1")
    assert resolve_keys([("acme", "scenario-key-1")]) == {"from-env-key-1": "acme"}
    monkeypatch.delenv(ENV_VAR)
    assert resolve_keys([("acme", "scenario-key-1")]) == {"scenario-key-1": "acme"}


@pytest.mark.parametrize("header,tenant", [
    ("Bearer acme-key-123", "acme"),
    ("bearer acme-key-123", "acme"),
    ("BEARER  acme-key-123 ", "acme"),
    ("Bearer globex-key-123", "globex"),
    ("Bearer acme-key-12", None),
    ("Bearer acme-key-1234", None),
    ("Basic acme-key-123", None),
    ("acme-key-123", None),
    ("Bearer", None),
    ("Bearer ", None),
    ("", None),
    (None, None),
])
def test_keyring_maps_bearer_tokens_to_tenants(header, tenant):
    ring = KeyRing({"acme-key-123": "acme", "globex-key-123": "globex"})
    assert ring.tenant_for(header) == tenant
    assert len(ring) == 2


def test_empty_keyring_refuses_everyone():
    assert KeyRing({}).tenant_for("Bearer anything-at-all") is None


@pytest.mark.parametrize("host,keys,refused", [
    ("127.0.0.1", {"demo-key-change-me": "demo", "short-ok": "t"}, None),  # loopback: a laptop's demo
    ("localhost", {"demo-key-change-me": "demo"}, None),
    ("::1", {"demo-key-change-me": "demo"}, None),
    ("0.0.0.0", {"demo-key-change-me": "demo"}, "the demo key"),
    ("10.1.2.3", {"a" * 32: "acme", "short-key-1": "globex"}, "tenant 'globex' has a key shorter than 16"),
    ("0.0.0.0", {"a" * 16: "acme"}, None),
])
def test_a_host_others_reach_refuses_the_demo_key_and_short_keys(host, keys, refused):
    from memorylab.serve.auth import check_exposed_keys

    if refused is None:
        check_exposed_keys(host, keys)
        return
    with pytest.raises(AuthConfigError, match=refused) as err:
        check_exposed_keys(host, keys)
    assert "\n" not in str(err.value) and not any(k in str(err.value) for k in keys if k != "demo-key-change-me")


def test_serving_agent_yaml_on_every_interface_is_refused_before_anything_starts(monkeypatch):
    from pathlib import Path

    from memorylab.serve.app import BuildArgs, build_app

    monkeypatch.delenv(ENV_VAR, raising=False)
    scenario = str(Path(__file__).parents[2] / "scenarios" / "agent.yaml")
    with pytest.raises(AuthConfigError, match="serve.host 0.0.0.0 .* demo key"):
        build_app(BuildArgs(scenario=scenario, host="0.0.0.0", folder="/nonexistent/never-created"))
