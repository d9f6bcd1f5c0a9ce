"""The MemoryAgent deployment: the model-driven steps of answering with memory — the adaptive retrieval
decision, reranking, and the answer from the generator. It holds no memories: the Ingress replica retrieves
and hands it the records, so it can run any number of replicas and never needs a handle back."""

from __future__ import annotations

import asyncio
from typing import Any, Mapping, Optional, Sequence

from ray import serve

from memorylab.actors.remote_lm import RemoteLM
from memorylab.memory.adaptive import make_policy
from memorylab.memory.records import MemoryRecord
from memorylab.memory.rerank import make_reranker
from memorylab.metrics.knowmem import clean_answer
from memorylab.models.protocol import GenerationParams
from memorylab.schema.memory_agent import GeneratorConfig, MemorySettings
from memorylab.serve.prompts import PromptTooLong, answer_prompt
from memorylab.serve.refusal import Refusal, remote_message

ANSWER_STOPS = ("\n", "Question:")


@serve.deployment(name="MemoryAgent", max_ongoing_requests=64)
class MemoryAgent:
    def __init__(self, generator: Any, memory: MemorySettings, generation: GeneratorConfig) -> None:
        self.lm = RemoteLM(generator)
        self.settings = memory
        self.generation = generation
        self._rerankers: dict[str, Any] = {}
        self._context: Optional[int] = None  # the generator's context length, read on the first answer
        adaptive = memory.adaptive
        # The confidence policy's prompt (the question alone) gets the budget of the answer's prompt.
        kwargs = {"temperature": adaptive.temperature, "max_prompt_tokens": generation.max_context_tokens}
        if adaptive.threshold is not None:
            kwargs["threshold"] = adaptive.threshold
        self.policy = make_policy(adaptive.policy, generator=self.lm, **kwargs)

    def policy_name(self) -> str:
        return self.policy.name

    async def decide(self, question: str, similarities: Optional[Mapping[str, Sequence[float]]] = None) -> Any:
        """The retrieval decision as a dict, or a Refusal when the generator refuses the question."""
        try:
            decision = await asyncio.to_thread(self.policy.decide, question, similarities=similarities or {})
        except ValueError as e:  # the generator refused (e.g. a budget over its context): the request's fault
            return Refusal(400, f"messages: {remote_message(e)}")
        return {"policy": decision.policy, "retrieve": decision.retrieve, "score": decision.score,
                "reason": decision.reason, "weights": decision.weights}

    def _reranker(self, name: str) -> Any:
        """Built on first use, in a worker thread (it calls the generator synchronously). listwise_first reads
        the generator's context length and start/pad ids, which a bare RemoteLM does not carry."""
        if name not in self._rerankers:
            cfg = self.settings.reranker
            generator = self.lm
            if name == "listwise_first":
                generator = RemoteLM(self.lm.handle)
                settings = self.lm.handle.lm_settings.remote().result()
                for key in ("max_length", "start_id", "pad_id", "batch_size"):
                    setattr(generator, key, settings[key])
            self._rerankers[name] = make_reranker(name, generator=generator, model_path=cfg.model_path,
                                                  window=cfg.window, stride=cfg.stride)
        return self._rerankers[name]

    def _rerank(self, name: str, query: str, records: list, top_k: int) -> Any:
        try:
            reranker = self._reranker(name)
        except (ValueError, OSError) as e:  # e.g. no cross-encoder model, labels the tokenizer cannot spell
            return Refusal(400, f"reranker '{name}' is not available here: {e}")
        return reranker.rerank(query, records, top_k)

    async def rerank(self, name: str, query: str, records: list[MemoryRecord], top_k: int) -> Any:
        """The records best first by reranker `name`, or a Refusal when that reranker cannot run here."""
        return await asyncio.to_thread(self._rerank, name, query, records, top_k)

    def _context_length(self) -> int:
        if self._context is None:
            self._context = int(self.lm.handle.context_length.remote().result())
        return self._context

    async def answer(self, question: str, records: list[MemoryRecord], max_tokens: Optional[int] = None) -> Any:
        """The generator's answer with `records` (already in context order) before the question. The prompt
        gets max_context_tokens, or less when the answer's max_tokens needs the room: memories are dropped
        first, and only a question that cannot fit at all is refused (400 naming max_tokens)."""
        max_new = max_tokens or self.generation.max_new_tokens
        context = await asyncio.to_thread(self._context_length)
        room = context - 1 - max_new  # the generator puts a start token before the prompt
        try:
            prompt, used = await asyncio.to_thread(answer_prompt, self.lm, records, question,
                                                   self.generation.max_context_tokens,
                                                   self.settings.retrieval.reorder, room)
        except PromptTooLong as e:
            return Refusal(400, f"max_tokens: {max_new} new tokens leave {max(room, 0)} of the model's "
                                f"{context}-token context to the prompt, and {e}")
        params = GenerationParams(max_new_tokens=max_new, stop=ANSWER_STOPS)
        try:
            answer = (await asyncio.to_thread(self.lm.generate, [prompt], params))[0]
        except ValueError as e:  # the generator refused: prompt + max_tokens over its context
            return Refusal(400, f"max_tokens: {remote_message(e)}")
        return {"answer": clean_answer(answer), "used_memories": [r.id for r in used]}
