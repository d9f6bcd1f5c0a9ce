"""OpenAIGenerator against a small OpenAI-compatible server on loopback (real HTTP, the `openai` client): both
APIs, log-probabilities in both shapes, label log-probabilities from the top alternatives, the start check
that refuses a server without what a policy reads, and every failure as a 502/503/504 within the timeout."""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from memorylab.errors import GeneratorRefused, GeneratorUnavailable, MemorylabError
from memorylab.models.openai_generator import OpenAIGenerator
from memorylab.models.protocol import GenerationParams

TOKENS = [" Lis", "bon"]
TOP = {" Lis": -0.1, " A": -2.5, " B": -3.0}


def fake_server() -> FastAPI:
    app = FastAPI()
    app.state.mode = "ok"

    def failure():
        mode = app.state.mode
        if mode == "rate":
            return JSONResponse({"error": {"message": "slow down"}}, status_code=429)
        if mode == "broken":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if mode == "too_long":
            return JSONResponse({"error": {"message": "prompt over the context"}}, status_code=400)
        return None

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "tiny", "object": "model", "owned_by": "x", "created": 0}]}

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        if app.state.mode == "slow":
            await asyncio.sleep(5)
        if (error := failure()) is not None:
            return error
        n = min(body["max_tokens"], len(TOKENS))
        logprobs = None
        if body.get("logprobs") is not None and app.state.mode != "no_logprobs":
            top = dict(list(TOP.items())[: body["logprobs"]])
            logprobs = {"tokens": TOKENS[:n], "token_logprobs": [-0.1] * n, "top_logprobs": [top] * n,
                        "text_offset": [0, 4][:n]}
        return {"id": "c", "object": "text_completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "text": "".join(TOKENS[:n]), "logprobs": logprobs,
                             "finish_reason": "length" if n < len(TOKENS) else "stop"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        if (error := failure()) is not None:
            return error
        n = min(body["max_tokens"], len(TOKENS))
        logprobs = None
        if body.get("logprobs"):
            top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in list(TOP.items())[: body.get("top_logprobs") or 0]]
            logprobs = {"content": [{"token": t, "logprob": -0.1, "bytes": None, "top_logprobs": top}
                                    for t in TOKENS[:n]]}
        return {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(TOKENS[:n])},
                             "logprobs": logprobs, "finish_reason": "length" if n < len(TOKENS) else "stop"}]}

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    app = fake_server()
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    while not running.started:
        time.sleep(0.02)
    yield app, f"http://127.0.0.1:{port}/v1"
    running.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def app(server):
    server[0].state.mode = "ok"
    return server[0]


def generator(url: str, api: str = "completions", timeout_s: float = 2.0) -> OpenAIGenerator:
    return OpenAIGenerator(url, "tiny", api=api, timeout_s=timeout_s, max_retries=0)


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_completions_with_finish_reason_and_token_logprobs(server, app, api):
    lm = generator(server[1], api)
    (whole,) = lm.complete(["Question: Where?\nAnswer:"], GenerationParams(max_new_tokens=8), logprobs=2)
    assert whole.text == " Lisbon" and whole.finish_reason == "stop"
    assert [t.token for t in whole.tokens] == TOKENS and whole.tokens[0].logprob == pytest.approx(-0.1)
    assert [a for a, _ in whole.tokens[0].top] == [" Lis", " A"]
    (cut,) = lm.complete(["x"], GenerationParams(max_new_tokens=1))
    assert cut.text == " Lis" and cut.finish_reason == "length" and cut.tokens is None
    assert lm.generate(["x", "y"], GenerationParams(max_new_tokens=8)) == [" Lisbon", " Lisbon"]


def test_label_logprobs_read_the_top_alternatives(server, app):
    (scores,) = generator(server[1]).label_logprobs(["Answer: ["], ["A", "B", "C"])
    assert scores[:2] == [pytest.approx(-2.5), pytest.approx(-3.0)] and scores[2] == -math.inf
    with pytest.raises(ValueError, match="at most 20"):
        generator(server[1]).label_logprobs(["x"], [chr(65 + i) for i in range(21)])


def test_tokens_are_estimated_and_clipped_by_characters(server):
    lm = generator(server[1])
    assert lm.count_tokens(["abcd", "abcde", ""]) == [1, 2, 0]
    assert lm.clip(["abcdefghij"], 2) == ["abcdefgh"] and lm.clip(["abcdefghij"], 2, keep="end") == ["cdefghij"]


def test_the_start_check(server, app):
    lm = generator(server[1])
    lm.check(logprobs=True, top=2)
    with pytest.raises(MemorylabError, match="lists 3 alternatives .* needs 8"):
        lm.check(top=8)
    app.state.mode = "no_logprobs"
    with pytest.raises(MemorylabError, match="gives no log-probabilities"):
        lm.check(logprobs=True)
    lm.check()  # nothing asked of it: a server without log-probabilities is fine
    with pytest.raises(MemorylabError, match=r"'gpt-x' is not served .*\(it serves: tiny\)"):
        OpenAIGenerator(server[1], "gpt-x", max_retries=0).check()


@pytest.mark.parametrize("mode, status, kind, words", [
    ("rate", 503, GeneratorUnavailable, "rate-limited"),
    ("broken", 502, GeneratorUnavailable, "HTTP 500"),
    ("too_long", 502, GeneratorRefused, "HTTP 400"),
    ("slow", 504, GeneratorUnavailable, "did not answer within 1 s"),
])
def test_failures_are_statuses_with_one_line(server, app, mode, status, kind, words):
    app.state.mode = mode
    began = time.monotonic()
    with pytest.raises(kind) as failure:
        generator(server[1], timeout_s=1.0).generate(["x"], GenerationParams(max_new_tokens=2))
    assert failure.value.status == status and words in str(failure.value) and "\n" not in str(failure.value)
    assert time.monotonic() - began < 4  # the timeout bounds the call; no retries were asked for


def test_a_server_that_is_not_there_is_503():
    with pytest.raises(GeneratorUnavailable) as failure:
        generator(f"http://127.0.0.1:{free_port()}/v1").generate(["x"], GenerationParams(max_new_tokens=2))
    assert failure.value.status == 503 and "cannot be reached" in str(failure.value)
