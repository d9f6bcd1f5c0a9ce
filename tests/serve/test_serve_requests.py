"""Requests against the real FastAPI app and Retriever in this process (inprocess.py), without Ray Serve:
metadata the store could not read back, timestamps as sent, /healthz, the per-request listwise reranker, and
the answer's token budget, on the memory routes and the OpenAI chat route; blank texts."""

from __future__ import annotations

from typing import Iterator

import pytest
from fastapi.testclient import TestClient
from inprocess import Handle, WordGenerator, client, memory_settings, start, with_settings
from served_app import MODEL_NAME, agent_id, auth

from memorylab.memory.records import MemoryRecord
from memorylab.schema.memory_agent import GeneratorConfig
from memorylab.serve.agent import MemoryAgent


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    yield start(tmp_path_factory.mktemp("inprocess"))


@pytest.fixture
def http(replica) -> TestClient:
    return client(replica)


def post_raw(http: TestClient, url: str, raw: str, method: str = "POST"):
    return http.request(method, url, content=raw.encode(), headers={**auth("acme"), "Content-Type": "application/json"})


def add(http: TestClient, agent: str, text: str, **message) -> dict:
    reply = http.post(f"/v1/agents/{agent}/memories", headers=auth("acme"),
                      json={"messages": [{"role": "user", "content": text, **message}]})
    assert reply.status_code == 200, reply.text
    return reply.json()["results"][0]


DEEP = '{"k": ' + "[" * 600 + "]" * 600 + "}"  # 1.3 KB of JSON


@pytest.mark.parametrize("metadata,message", [(DEEP, "deeper than 32"), ('{"score": NaN}', "NaN"),
                                              ('{"x": [Infinity]}', "Infinity")])
def test_metadata_the_store_could_not_read_back_is_422_naming_metadata(http, metadata, message):
    # Stored, 600 levels made GET of the memory and every list page holding it a 500 (pydantic's serialization
    # depth), and NaN or Infinity came back as null. Refused on add and on update; the memory stays as it was.
    agent = agent_id()
    kept = add(http, agent, "Jo Doe lives in Bern.")
    added = post_raw(http, f"/v1/agents/{agent}/memories",
                     '{"messages": [{"role": "user", "content": "Al Roe lives in Rome."}], "metadata": %s}' % metadata)
    updated = post_raw(http, f"/v1/agents/{agent}/memories/{kept['id']}",
                       '{"memory": "Jo Doe lives in Basel.", "metadata": %s}' % metadata, method="PUT")
    for reply in (added, updated):
        assert reply.status_code == 422, reply.text
        (error,) = reply.json()["detail"]
        assert error["loc"] == ["body", "metadata"] and message in error["msg"], error
    listed = http.get(f"/v1/agents/{agent}/memories", headers=auth("acme"))
    assert [(m["memory"], m["metadata"]) for m in listed.json()["results"]] == [("Jo Doe lives in Bern.", {})]


def test_an_add_with_more_facts_than_the_cap_is_422_and_writes_nothing(http):
    # Every sentence was a fact, each embedded, matched against the agent's memories and committed on its own:
    # one request of a megabyte of short sentences held the write path for minutes.
    agent = agent_id()
    add(http, agent, "Jo Doe lives in Bern.")
    many = " ".join(f"Person{i} Roe lives in Rome{i}." for i in range(65))
    reply = http.post(f"/v1/agents/{agent}/memories", headers=auth("acme"),
                      json={"messages": [{"role": "user", "content": many}]})
    assert reply.status_code == 422, reply.text
    (error,) = reply.json()["detail"]
    assert error["loc"] == ["body", "messages"] and "more than 64 facts" in error["msg"]
    listed = http.get(f"/v1/agents/{agent}/memories", headers=auth("acme")).json()["results"]
    assert [m["memory"] for m in listed] == ["Jo Doe lives in Bern."]
    at_cap = " ".join(f"Person{i} Roe lives in Rome{i}." for i in range(64))
    assert http.post(f"/v1/agents/{agent}/memories", headers=auth("acme"),
                     json={"messages": [{"role": "user", "content": at_cap}]}).status_code == 200


@pytest.mark.parametrize("value", ["[" * 33 + "]" * 33, '{"a": ' * 900 + "1" + "}" * 900])
def test_filters_nested_past_metadatas_depth_are_422_naming_filters(http, value):
    # A filter value is compared with a memory's metadata value, which is at most 32 levels deep: a deeper one
    # matches nothing, and thousands of levels ran the request's checks out of stack (a 500).
    agent = agent_id()
    add(http, agent, "Jo Doe lives in Bern.")
    reply = post_raw(http, f"/v1/agents/{agent}/search", '{"query": "Bern", "filters": {"metadata.k": %s}}' % value)
    assert reply.status_code == 422, reply.text[:300]
    (error,) = reply.json()["detail"]
    assert error["loc"][:2] == ["body", "filters"] and "deeper than 32" in error["msg"], error
    found = post_raw(http, f"/v1/agents/{agent}/search", '{"query": "Bern", "filters": {"metadata.k": [[["x"]]]}}')
    assert found.status_code == 200 and found.json()["results"] == [], found.text


def test_a_timestamp_filter_finds_memories_with_the_value_as_sent(http):
    # pydantic rewrote "+00:00" as "Z" before storing, so filtering with the value the client sent missed.
    agent = agent_id()
    for sent, text in (("2024-05-01T10:00:00+00:00", "Jo Doe lives in Bern."),
                       ("2024-05-01T12:00:00+02:00", "Al Roe works for Acme."), (1714557600, "Cy Moss drives a van.")):
        memory = add(http, agent, text, timestamp=sent)
        assert memory["event"] == "ADD", memory
        got = http.get(f"/v1/agents/{agent}/memories/{memory['id']}", headers=auth("acme")).json()
        assert got["metadata"]["timestamp"] == sent, got
        hits = http.post(f"/v1/agents/{agent}/search", headers=auth("acme"),
                         json={"query": text, "filters": {"timestamp": sent}}).json()["results"]
        assert [h["id"] for h in hits] == [memory["id"]], (sent, hits)
    reply = http.post(f"/v1/agents/{agent}/memories", headers=auth("acme"),
                      json={"messages": [{"role": "user", "content": "Al Roe lives in Rome.", "timestamp": "soon"}]})
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"] == ["body", "messages", 0, "timestamp"]


def test_healthz_tells_nothing_about_tenants(http):
    add(http, agent_id(), "Jo Doe lives in Bern.")
    assert http.get("/healthz").json() == {"status": "ok"}  # no key needed, so no count of anyone's memories


class Reranker:
    """The MemoryAgent's rerank, recording the rerankers asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def rerank(self, name, query, records, top_k):
        self.asked.append(name)
        return list(reversed(records))[:top_k]


@pytest.mark.parametrize("replicas", [1, 2])
def test_listwise_rerank_per_request_works_with_any_number_of_generator_replicas(http, replica, monkeypatch,
                                                                                 replicas):
    # Each window is scored in one stateless call (label_logprobs): no session spans two calls Serve may route
    # to two replicas.
    agent = agent_id()
    add(http, agent, "Jo Doe lives in Bern.")
    reranker = Reranker()
    monkeypatch.setattr(replica, "agent", Handle(reranker))
    monkeypatch.setattr(replica, "config", with_settings(replica, serve={"generator_replicas": replicas}).config)
    reply = http.post(f"/v1/agents/{agent}/search", headers=auth("acme"),
                      json={"query": "Jo Doe", "rerank": "listwise_first"})
    assert reply.status_code == 200, reply.text
    assert reranker.asked == ["listwise_first"]


@pytest.fixture
def answering(tmp_path):
    """A replica whose MemoryAgent (the real class) answers with a 256-token generator, one token a word, and
    retrieves 40 memories: more than the prompt budget of 224 tokens holds."""
    generation = GeneratorConfig(max_new_tokens=8, max_context_tokens=224)
    memory = memory_settings(retrieval={"top_k": 40, "reorder": False})
    generator = Handle(WordGenerator(context=256))
    agent = MemoryAgent.func_or_class(generator, memory, generation)
    replica = start(tmp_path, memory, agent=Handle(agent), generator=generator, generation=generation)
    texts = [f"Jo Doe fact number {i} is here and now" for i in range(40)]  # 9 words each
    vectors = replica.retriever.service.embedder.embed(texts)
    replica.retriever.service.store.add_many(
        [MemoryRecord(id=f"m{i}", tenant="acme", agent="jo", text=t, created_at=i + 1, updated_at=i + 1)
         for i, t in enumerate(texts)], vectors)
    return replica


CHAT = "/v1/agents/jo/chat"
OPENAI = "/v1/chat/completions"


def ask(replica, route: str, question: str, max_tokens: int):
    messages = [{"role": "user", "content": question}]
    body = ({"messages": messages, "max_tokens": max_tokens} if route == CHAT else
            {"model": MODEL_NAME, "agent_id": "jo", "messages": messages, "max_tokens": max_tokens})
    return client(replica).post(route, json=body, headers=auth("acme"))


@pytest.mark.parametrize("route", [CHAT, OPENAI])
def test_the_answers_max_tokens_costs_memories_not_a_400(answering, route):
    # The prompt was cut to max_context_tokens whatever max_tokens asked: once memories filled it, the
    # generator refused prompt + max_tokens (a 400 blaming max_tokens). Now the prompt leaves the answer room.
    replies = {n: ask(answering, route, "Where does Jo Doe live?", n) for n in (8, 64, 200)}
    assert all(r.status_code == 200 for r in replies.values()), {n: r.text for n, r in replies.items()}
    used = {n: len(r.json()["used_memories"] if route == CHAT else r.json()["memorylab"]["used_memories"])
            for n, r in replies.items()}
    assert (used[8], used[64], used[200]) == (24, 20, 5), used  # prompts of 223 (the budget), 191 and 55 tokens


@pytest.mark.parametrize("route", [CHAT, OPENAI])
def test_only_a_question_that_cannot_fit_beside_max_tokens_is_400(answering, route):
    reply = ask(answering, route, " ".join(["word"] * 60), 200)  # 62 prompt tokens; 256 - 1 - 200 leave 55
    assert reply.status_code == 400, reply.text
    detail = reply.json()["detail"]
    assert detail.startswith("max_tokens: 200 new tokens leave 55 of the model's 256-token context") and \
        "question alone takes 62 tokens" in detail, detail


def test_blank_texts_are_422_naming_the_field(http):
    # A memory of only whitespace was refused by the store with a 400 after validation had passed it, and a
    # blank query was searched (it found memories at random).
    agent = agent_id()
    kept = add(http, agent, "Jo Doe lives in Bern.")
    replies = {
        ("body", "memory"): http.put(f"/v1/agents/{agent}/memories/{kept['id']}", headers=auth("acme"),
                                     json={"memory": " \n\t"}),
        ("body", "query"): http.post(f"/v1/agents/{agent}/search", headers=auth("acme"), json={"query": "  "}),
    }
    for loc, reply in replies.items():
        assert reply.status_code == 422, reply.text
        (error,) = reply.json()["detail"]
        assert tuple(error["loc"]) == loc and "whitespace" in error["msg"], error
    got = http.get(f"/v1/agents/{agent}/memories/{kept['id']}", headers=auth("acme")).json()
    assert got["memory"] == "Jo Doe lives in Bern.", got
