"""The MemoryAgent deployment: answers with memory (adaptive retrieval, reranking, reordering, the generator)
and serves reranked searches. It holds no state of its own: memories live in the Retriever, the model in the
Generator, so it can run any number of replicas."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Optional

from ray import serve

from memorylab.actors.remote_lm import RemoteLM
from memorylab.memory.adaptive import make_policy
from memorylab.memory.records import MemoryRecord
from memorylab.memory.reorder import reorder_for_context
from memorylab.memory.rerank import make_reranker
from memorylab.models.protocol import GenerationParams
from memorylab.serve.retriever import Refusal, remote_message
from memorylab.serve.prompts import answer_prompt, clean_answer, question_of

ANSWER_STOPS = ("\n", "Question:")


class _Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal


def _hits(reply: Any) -> list:
    if isinstance(reply, Refusal):  # unknown agent, bad filter: passed back to the ingress as is
        raise _Refused(reply)
    return reply


def _refusals_returned(method: Any) -> Any:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except _Refused as e:
            return e.refusal

    wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
    return wrapper


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


@serve.deployment(name="MemoryAgent", max_ongoing_requests=64)
class MemoryAgent:
    def __init__(self, retriever: Any, generator: Any, memory: dict[str, Any], generation: dict[str, Any]) -> None:
        self.retriever = retriever
        self.lm = RemoteLM(generator)
        self.settings = memory
        self.generation = generation
        self._rerankers: dict[str, Any] = {}
        adaptive = memory["adaptive"]
        kwargs = {"temperature": adaptive["temperature"]}
        if adaptive["threshold"] is not None:
            kwargs["threshold"] = adaptive["threshold"]
        self.policy = make_policy(adaptive["policy"], generator=self.lm, **kwargs)

    def _reranker(self, name: str) -> Any:
        """Built on first use, in a worker thread (it calls the generator synchronously). listwise_first reads
        the generator's context length and start/pad ids, which a bare RemoteLM does not carry."""
        if name not in self._rerankers:
            cfg = self.settings["reranker"]
            generator = self.lm
            if name == "listwise_first":
                generator = RemoteLM(self.lm.handle)
                settings = self.lm.handle.lm_settings.remote().result()
                for key in ("max_length", "start_id", "pad_id", "batch_size"):
                    setattr(generator, key, settings[key])
            try:
                self._rerankers[name] = make_reranker(name, generator=generator, model_path=cfg["model_path"],
                                                      window=cfg["window"], stride=cfg["stride"])
            except ValueError as e:  # e.g. a tokenizer that cannot spell the labels: the request cannot be served
                raise _Refused(Refusal(400, f"reranker '{name}' is not available here: {e}")) from None
        return self._rerankers[name]

    def _rerank(self, name: str, query: str, records: list, top_k: int) -> list:
        return self._reranker(name).rerank(query, records, top_k)

    async def _check_agent(self, tenant: str, agent: str) -> None:
        """When the policy decides not to retrieve, the Retriever is never asked, so ownership is checked here:
        another tenant's agent is 404 whatever the policy says."""
        _hits(await self.retriever.check_agent.remote(tenant, agent))

    @_refusals_returned
    async def search(self, tenant: str, agent: str, query: str, top_k: int, filters: Optional[dict] = None,
                     rerank: Optional[str] = None, mode: Optional[str] = None, adaptive: bool = False) -> dict:
        timings: dict[str, float] = {}
        if adaptive:
            t = time.perf_counter()
            decision = await self._decide(tenant, agent, query)
            timings["decide"] = _ms(t)
            if not decision.retrieve:
                await self._check_agent(tenant, agent)
                return {"results": [], "retrieved": False, "timings_ms": timings}
        hits, more = await self._retrieve(tenant, agent, query, top_k, filters, rerank, mode)
        timings.update(more)
        return {"results": [{"id": r.id, "memory": r.text, "score": s} for r, s in hits], "retrieved": True,
                "timings_ms": timings}

    async def _retrieve(self, tenant: str, agent: str, query: str, top_k: int, filters: Optional[dict],
                        rerank: Optional[str], mode: Optional[str]) -> tuple[list[tuple[MemoryRecord, float]], dict]:
        rerank = rerank or self.settings["reranker"]["name"]
        depth = max(top_k, self.settings["retrieval"]["rerank_depth"]) if rerank != "none" else top_k
        t = time.perf_counter()
        hits = _hits(await self.retriever.search.remote(tenant, agent, query, depth, mode, filters))
        timings = {"retrieve": _ms(t)}
        if rerank != "none" and hits:
            t = time.perf_counter()
            score = {r.id: s for r, s in hits}
            ranked = await asyncio.to_thread(self._rerank, rerank, query, [r for r, _ in hits], top_k)
            hits = [(r, score[r.id]) for r in ranked]
            timings["rerank"] = _ms(t)
        return hits[:top_k], timings

    async def _decide(self, tenant: str, agent: str, question: str) -> Any:
        similarities: dict[str, list[float]] = {}
        if self.policy.name == "entropy":
            # The router weighs how sharply the query matches at each granularity: single memories (turns)
            # and the sessions they came from (the best memory of each session).
            hits = _hits(await self.retriever.search.remote(tenant, agent, question, 50, "dense", None))
            similarities = {"turn": [s for _, s in hits]}
            sessions: dict[str, float] = {}
            for r, s in hits:
                key = r.source.split(",")[0]
                sessions[key] = max(s, sessions.get(key, -1.0))
            similarities["session"] = list(sessions.values())
        return await asyncio.to_thread(self.policy.decide, question, similarities=similarities)

    @_refusals_returned
    async def chat(self, tenant: str, agent: str, messages: list[dict], max_tokens: Optional[int] = None) -> dict:
        try:
            question = question_of(messages)
        except ValueError as e:  # the Ingress validates this (422); other callers get the same answer
            return Refusal(422, str(e))
        decision = await self._decide(tenant, agent, question)
        records: list[MemoryRecord] = []
        if not decision.retrieve:
            await self._check_agent(tenant, agent)
        else:
            hits, _ = await self._retrieve(tenant, agent, question, self.settings["retrieval"]["top_k"], None,
                                           None, None)
            records = [r for r, _ in hits]
            if self.settings["retrieval"]["reorder"]:
                records = reorder_for_context(records)
        prompt, used = await asyncio.to_thread(answer_prompt, self.lm, records, question,
                                               self.generation["max_context_tokens"])
        params = GenerationParams(max_new_tokens=max_tokens or self.generation["max_new_tokens"], stop=ANSWER_STOPS)
        try:
            answer = (await asyncio.to_thread(self.lm.generate, [prompt], params))[0]
        except ValueError as e:  # the generator refused: prompt + max_tokens over its context
            return Refusal(400, f"max_tokens: {remote_message(e)}")
        return {"answer": clean_answer(answer), "used_memories": [r.id for r in used],
                "retrieved": decision.retrieve, "decision": decision_dict(decision)}


def decision_dict(decision: Any) -> dict:
    return {"policy": decision.policy, "retrieve": decision.retrieve, "score": decision.score,
            "reason": decision.reason, "weights": decision.weights}
