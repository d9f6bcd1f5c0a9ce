"""Answering with memory, step by step, in the Ingress replica: decide (MemoryAgent), retrieve (here, in
process), rerank and answer (MemoryAgent). Each step returns a Refusal instead of raising when the request
cannot be served (unknown agent, bad filter, unavailable reranker)."""

from __future__ import annotations

import time
from typing import Any, Optional

from memorylab.memory.mentions import alias_queries, named_in
from memorylab.memory.reorder import reorder_for_context
from memorylab.serve.prompts import question_of
from memorylab.serve.refusal import Refusal

ENTROPY_DEPTH = 50  # memories whose similarities the entropy router weighs
MENTION_DEPTH = 10  # keyword hits read for the people and nicknames a question names


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


async def _similarities(ingress: Any, tenant: str, agent: str, question: str) -> Any:
    """For the entropy router: how sharply the query matches single memories (turns) and the sessions they
    came from (the best memory of each session)."""
    hits = await ingress.retriever.search(tenant, agent, question, ENTROPY_DEPTH, "dense", None)
    if isinstance(hits, Refusal):
        return hits
    sessions: dict[str, float] = {}
    for record, score in hits:
        key = record.source.split(",")[0]
        sessions[key] = max(score, sessions.get(key, -1.0))
    return {"turn": [s for _, s in hits], "session": list(sessions.values())}


async def _mention_hits(ingress: Any, tenant: str, agent: str, question: str, asked: dict) -> Any:
    """The question's keyword hits that name people and nicknames, searched once per request (`asked` keeps
    them): the adaptive decision and the alias resolution of one /chat read the same hits."""
    if "hits" not in asked:
        asked["hits"] = await ingress.retriever.search(tenant, agent, question, MENTION_DEPTH, "bm25", None)
    return asked["hits"]


async def decide(ingress: Any, tenant: str, agent: str, question: str, asked: Optional[dict] = None) -> Any:
    similarities = None
    if ingress.config.memory.adaptive.policy == "entropy":
        similarities = await _similarities(ingress, tenant, agent, question)
        if isinstance(similarities, Refusal):
            return similarities
    decision = await ingress.agent.decide.remote(question, similarities)
    adaptive = ingress.config.memory.adaptive
    if isinstance(decision, Refusal) or decision["retrieve"] or not adaptive.memory_aware or \
            adaptive.policy in ("always", "never"):
        return decision
    # The generator may be sure of an answer its weights hold while the memories say otherwise (a fact it was
    # told later): a question about someone the memories hold facts about is answered from them.
    hits = await _mention_hits(ingress, tenant, agent, question, {} if asked is None else asked)
    named = [] if isinstance(hits, Refusal) else named_in(question, [r for r, _ in hits])
    if named:
        decision = {**decision, "retrieve": True,
                    "reason": f"the memories hold facts about {named[0].subject}, newer than the generator's "
                              f"weights ({decision['reason']})"}
    return decision


async def retrieve(ingress: Any, tenant: str, agent: str, query: str, top_k: int, filters: Optional[dict],
                   rerank: Optional[str], mode: Optional[str]) -> Any:
    """(hits, timings): the hybrid top_k, or the top rerank_depth reordered by the reranker and cut to top_k."""
    settings = ingress.config.memory
    rerank = rerank or settings.reranker.name
    depth = max(top_k, settings.retrieval.rerank_depth) if rerank != "none" else top_k
    t = time.perf_counter()
    hits = await ingress.retriever.search(tenant, agent, query, depth, mode, filters)
    if isinstance(hits, Refusal):
        return hits
    timings = {"retrieve": _ms(t)}
    if rerank != "none" and hits:
        t = time.perf_counter()
        score = {r.id: s for r, s in hits}
        ranked = await ingress.agent.rerank.remote(rerank, query, [r for r, _ in hits], top_k)
        if isinstance(ranked, Refusal):
            return ranked
        hits = [(r, score[r.id]) for r in ranked]
        timings["rerank"] = _ms(t)
    return hits[:top_k], timings


async def search(ingress: Any, tenant: str, agent: str, query: str, top_k: int, filters: Optional[dict],
                 rerank: Optional[str], mode: Optional[str], adaptive: bool) -> Any:
    timings: dict[str, float] = {}
    if adaptive:
        t = time.perf_counter()
        decision = await decide(ingress, tenant, agent, query)
        if isinstance(decision, Refusal):
            return decision
        timings["decide"] = _ms(t)
        if not decision["retrieve"]:
            return {"results": [], "retrieved": False, "timings_ms": timings}
    found = await retrieve(ingress, tenant, agent, query, top_k, filters, rerank, mode)
    if isinstance(found, Refusal):
        return found
    hits, more = found
    return {"results": [{"id": r.id, "memory": r.text, "score": s} for r, s in hits], "retrieved": True,
            "timings_ms": {**timings, **more}}


async def _with_aliases(ingress: Any, tenant: str, agent: str, question: str, records: list, top_k: int,
                        asked: dict) -> Any:
    """`records` with what a nickname in the question stands for: the nickname's memory and the hits of the
    question asked with the person's name come first, then the rest, cut to top_k."""
    hits = await _mention_hits(ingress, tenant, agent, question, asked)
    if isinstance(hits, Refusal):
        return hits
    resolved = []
    for alias, rewritten in alias_queries(question, [r for r, _ in hits]):
        found = await retrieve(ingress, tenant, agent, rewritten, top_k, None, None, None)
        if isinstance(found, Refusal):
            return found
        resolved += [alias] + [r for r, _ in found[0]]
    if not resolved:
        return records
    unique = {r.id: r for r in resolved + records}
    return list(unique.values())[:top_k]


async def chat(ingress: Any, tenant: str, agent: str, messages: list[dict], max_tokens: Optional[int],
               logprobs: Optional[int] = None) -> Any:
    try:
        question = question_of(messages)
    except ValueError as e:  # the request models validate this (422); other callers get the same answer
        return Refusal(422, str(e))
    asked: dict = {}
    decision = await decide(ingress, tenant, agent, question, asked)
    if isinstance(decision, Refusal):
        return decision
    records = []
    if decision["retrieve"]:
        retrieval = ingress.config.memory.retrieval
        found = await retrieve(ingress, tenant, agent, question, retrieval.top_k, None, None, None)
        if isinstance(found, Refusal):
            return found
        records = [r for r, _ in found[0]]
        if retrieval.resolve_aliases:
            records = await _with_aliases(ingress, tenant, agent, question, records, retrieval.top_k, asked)
            if isinstance(records, Refusal):
                return records
        if retrieval.reorder:
            records = reorder_for_context(records)
    reply = await ingress.agent.answer.remote(question, records, max_tokens, logprobs)
    if isinstance(reply, Refusal):
        return reply
    return {**reply, "retrieved": decision["retrieve"], "decision": decision}
