"""The OpenAI routes' wire format, in process (inprocess.py, a one-word-a-token generator): log-probabilities
in each route's shape, finish_reason "length" exactly when max_tokens cut the answer, usage, server-sent
events with stream_options.include_usage, and the request checks OpenAI makes."""

from __future__ import annotations

import json

import pytest
from inprocess import Handle, WordGenerator, client, start
from served_app import MODEL_NAME, auth


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    replica = start(tmp_path_factory.mktemp("wire"), generator=Handle(WordGenerator(answer="Lisbon is sunny")))
    return client(replica)


def post(http, route: str, **body):
    return http.post(f"/v1/{route}", headers=auth("acme"), json={"model": MODEL_NAME, **body})


def events(reply) -> list:
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in reply.text.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    return [json.loads(line[len("data: "):]) for line in lines[:-1]]


def test_completion_logprobs_in_the_legacy_shape(http):
    choice = post(http, "completions", prompt="Question: Where?", max_tokens=8, logprobs=1).json()["choices"][0]
    assert choice["text"] == " Lisbon is sunny" and choice["finish_reason"] == "stop"
    logprobs = choice["logprobs"]
    assert logprobs["tokens"] == [" Lisbon", " is", " sunny"] and logprobs["token_logprobs"] == [-0.5] * 3
    assert logprobs["top_logprobs"][0] == {" Lisbon": -0.5} and logprobs["text_offset"] == [0, 7, 10]
    assert post(http, "completions", prompt="x", max_tokens=8).json()["choices"][0]["logprobs"] is None


def test_chat_logprobs_in_the_chat_shape(http):
    reply = post(http, "chat/completions", messages=[{"role": "user", "content": "Where?"}], max_tokens=8,
                 logprobs=True, top_logprobs=1).json()
    content = reply["choices"][0]["logprobs"]["content"]
    assert [t["token"] for t in content] == [" Lisbon", " is", " sunny"]
    assert content[0]["bytes"] == list(b" Lisbon") and content[0]["top_logprobs"][0]["token"] == " Lisbon"
    assert reply["usage"]["completion_tokens"] == 3


def test_finish_reason_is_length_exactly_when_max_tokens_cut_the_answer(http):
    cut = post(http, "completions", prompt="x", max_tokens=2).json()["choices"][0]
    assert cut["text"] == " Lisbon is" and cut["finish_reason"] == "length"
    whole = post(http, "completions", prompt="x", max_tokens=3).json()["choices"][0]
    assert whole["finish_reason"] == "stop"


def test_usage_counts_prompt_and_completion_tokens(http):
    usage = post(http, "completions", prompt="one two three", max_tokens=8).json()["usage"]
    assert usage == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_chat_stream_sends_a_role_the_tokens_the_finish_and_the_usage(http):
    chunks = events(post(http, "chat/completions", messages=[{"role": "user", "content": "Where?"}], max_tokens=2,
                         stream=True, stream_options={"include_usage": True}))
    assert all(c["object"] == "chat.completion.chunk" for c in chunks) and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == " Lisbon is"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2
    assert all(c["usage"] is None for c in chunks[:-1])  # include_usage: null until the last chunk


def test_completion_stream_without_usage(http):
    chunks = events(post(http, "completions", prompt="x", max_tokens=8, stream=True))
    assert "".join(c["choices"][0]["text"] for c in chunks) == " Lisbon is sunny"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and all("usage" not in c for c in chunks)


@pytest.mark.parametrize("route, body, field", [
    ("chat/completions", {"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}, "top_logprobs"),
    ("chat/completions", {"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}},
     "stream_options"),
    ("completions", {"prompt": "x", "logprobs": 21}, "logprobs"),
    ("completions", {"prompt": "x", "echo": True}, "echo"),
    # stop: at most 4 sequences (OpenAI's bound), each of bounded length, checked before any tokenizing.
    ("completions", {"prompt": "x", "stop": [str(i) for i in range(5)]}, "stop"),
    ("completions", {"prompt": "x", "stop": ["."] * 10_000}, "stop"),
    ("chat/completions", {"messages": [{"role": "user", "content": "x"}], "stop": "x" * 257}, "stop"),
    ("chat/completions", {"messages": [{"role": "user", "content": "x"}], "stop": ["ok", "y" * 257]}, "stop"),
])
def test_requests_openai_refuses_are_refused(http, route, body, field):
    reply = post(http, route, **body)
    assert reply.status_code == 422 and field in reply.text


def test_up_to_four_stop_sequences_are_taken(http):
    for stop in (["sunny", "a", "b", "c" * 256], "c" * 256, [], None):
        reply = post(http, "completions", prompt="Where?", stop=stop)
        assert reply.status_code == 200, reply.text
