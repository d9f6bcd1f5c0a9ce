"""Property-based requests from the app's own /openapi.json (schemathesis strategies driven by hypothesis): for
every operation, random path and query parameters and JSON bodies, both valid ones (positive) and ones that
break the schema (negative), sent with a valid key of either tenant, a wrong key or none. Whatever arrives,
the server never answers 5xx, and every answer is one /openapi.json documents: its status, its content type
and its body's shape.

schemathesis' own pytest integration (`schemathesis.pytest.from_fixture`) does not work with pytest 9, so the
operations are listed here and each is driven by `hypothesis.given` over `operation.as_strategy()`.
Examples are bounded (`EXAMPLES` per operation and mode) so the module runs in well under a minute on 2 cores;
MEMORYLAB_FUZZ_EXAMPLES=200 searches deeper (and MEMORYLAB_FUZZ_RANDOM=1 with new examples on each run).
"""

from __future__ import annotations

import os

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the `test` extra (pip install -e .[test])")
from schemathesis.generation.modes import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance, response_schema_conformance, status_code_conformance)
from served_app import KEYS, MODEL_NAME, Served, agent_id  # noqa: E402

EXAMPLES = int(os.environ.get("MEMORYLAB_FUZZ_EXAMPLES", "15"))
DERANDOMIZE = os.environ.get("MEMORYLAB_FUZZ_RANDOM", "") != "1"
AUTH = st.sampled_from([KEYS["acme"], KEYS["acme"], KEYS["globex"], "not-a-valid-key", None])
OPERATIONS = [
    ("GET", "/healthz"),
    ("POST", "/v1/agents/{agent_id}/memories"),
    ("GET", "/v1/agents/{agent_id}/memories"),
    ("GET", "/v1/agents/{agent_id}/memories/{memory_id}"),
    ("PUT", "/v1/agents/{agent_id}/memories/{memory_id}"),
    ("DELETE", "/v1/agents/{agent_id}/memories/{memory_id}"),
    ("GET", "/v1/agents/{agent_id}/memories/{memory_id}/history"),
    ("GET", "/v1/agents/{agent_id}/events/{event_id}"),
    ("POST", "/v1/agents/{agent_id}/search"),
    ("POST", "/v1/agents/{agent_id}/chat"),
    ("GET", "/v1/models"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/chat/completions"),
]


@pytest.fixture(scope="module")
def api_schema(served: Served):
    return schemathesis.openapi.from_url(f"{served.url}/openapi.json")


@pytest.fixture(scope="module")
def known(served: Served) -> dict[str, str]:
    """An agent of tenant acme with one memory and one async add: steered examples aim at them (and at the served model's name),
    so that requests reach past the 404s of random ids and names into the routes' work."""
    agent = agent_id("fuzz")
    with served.client("acme") as client:
        reply = client.post(f"/v1/agents/{agent}/memories",
                            json={"messages": [{"role": "user", "content": "Ann Bo lives in Oslo."}]})
        queued = client.post(f"/v1/agents/{agent}/memories",
                             json={"messages": [{"role": "user", "content": "Cy Bo lives in Rome."}], "async": True})
    assert reply.status_code == 200, reply.text
    assert queued.status_code == 202, queued.text
    return {"agent_id": agent, "memory_id": reply.json()["results"][0]["id"], "model": MODEL_NAME,
            "event_id": queued.json()["event_id"]}


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


def test_every_operation_is_fuzzed(api_schema):
    published = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert published == set(OPERATIONS), f"add new operations to OPERATIONS: {published ^ set(OPERATIONS)}"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("method,path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_server_errors(api_schema, session: requests.Session, served: Served, known, method, path, mode):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode), key=AUTH, steer=st.booleans())
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=DERANDOMIZE, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    def check(case, key, steer):
        # The generated `authorization` header is replaced by a key of our choosing: random strings would
        # almost never authenticate, and the routes behind the check would go untested.
        case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        if steer:
            for name in case.path_parameters or {}:
                case.path_parameters[name] = known[name]
            if isinstance(case.body, dict) and "model" in case.body:
                case.body["model"] = known["model"]
        response = case.call(base_url=served.url, session=session, timeout=60,
                             headers={"Authorization": f"Bearer {key}"} if key else None)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path}: HTTP {response.status_code} {response.text[:300]}\n"
            f"query={case.query} body={str(case.body)[:300]}")
        # Every answer in the shape /openapi.json documents for its status (a documented one: each route
        # lists the errors it gives), with the content type it declares.
        case.validate_response(response, checks=[status_code_conformance, content_type_conformance,
                                                 response_schema_conformance])

    try:
        check()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        pytest.skip(f"{method} {path} has nothing that a request could get wrong")
