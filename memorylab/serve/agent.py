"""The MemoryAgent deployment: the model-driven steps of answering with memory — the adaptive retrieval
decision, reranking, and the answer from the generator. It holds no memories: the Ingress replica retrieves
and hands it the records, so it can run any number of replicas and never needs a handle back."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Mapping, Optional, Sequence

from ray import serve

from memorylab.errors import GeneratorUnavailable
from memorylab.memory.adaptive import make_policy
from memorylab.memory.records import MemoryRecord
from memorylab.memory.rerank import make_reranker
from memorylab.schema.memory_agent import GeneratorConfig, MemorySettings
from memorylab.serve.generator import text_generator
from memorylab.serve.prompts import PromptTooLong, answer_with
from memorylab.serve.refusal import Refusal, remote_message


@serve.deployment(name="MemoryAgent", max_ongoing_requests=64)
class MemoryAgent:
    def __init__(self, generator: Any, memory: MemorySettings, generation: GeneratorConfig) -> None:
        """`generator`: the Generator deployment's handle, or the `generator:` block of an OpenAI-compatible
        server (serve/generator.py)."""
        self.lm = text_generator(generator)
        self.settings = memory
        self.generation = generation
        self._rerankers: dict[str, Any] = {}
        self._policy: Optional[Any] = None
        self._policy_lock = threading.Lock()

    def _policy_decides(self, question: str, similarities: Mapping[str, Sequence[float]]) -> Any:
        """The adaptive policy's decision. The policy is built on first use, in the worker thread this runs in:
        the confidence policy reads the generator's context length, a call on the Generator deployment that
        must not block the replica's event loop (where __init__ runs)."""
        with self._policy_lock:
            if self._policy is None:
                adaptive = self.settings.adaptive
                # The confidence policy's prompt (the question alone) gets the budget of the answer's prompt.
                kwargs = {"temperature": adaptive.temperature,
                          "max_prompt_tokens": self.generation.max_context_tokens}
                if adaptive.threshold is not None:
                    kwargs["threshold"] = adaptive.threshold
                self._policy = make_policy(adaptive.policy, generator=self.lm, **kwargs)
        return self._policy.decide(question, similarities=similarities)

    async def decide(self, question: str, similarities: Optional[Mapping[str, Sequence[float]]] = None) -> Any:
        """The retrieval decision as a dict, or a Refusal when the generator refuses the question or fails."""
        decision = await _asking("messages", self._policy_decides, question, similarities or {})
        if isinstance(decision, Refusal):
            return decision
        return {"policy": decision.policy, "retrieve": decision.retrieve, "score": decision.score,
                "reason": decision.reason, "weights": decision.weights}

    def _reranker(self, name: str) -> Any:
        """Built on first use, in a worker thread (listwise_first asks the generator to check its labels)."""
        if name not in self._rerankers:
            cfg = self.settings.reranker
            self._rerankers[name] = make_reranker(name, generator=self.lm, model_path=cfg.model_path,
                                                  window=cfg.window, stride=cfg.stride)
        return self._rerankers[name]

    def _rerank(self, name: str, query: str, records: list, top_k: int) -> Any:
        try:
            reranker = self._reranker(name)
        except GeneratorUnavailable:
            raise
        except (ValueError, OSError) as e:  # e.g. no cross-encoder model, labels the tokenizer cannot spell
            return Refusal(400, f"reranker '{name}' is not available here: {e}")
        return reranker.rerank(query, records, top_k)

    async def rerank(self, name: str, query: str, records: list[MemoryRecord], top_k: int) -> Any:
        """The records best first by reranker `name`, or a Refusal when that reranker cannot run here."""
        return await _asking("query", self._rerank, name, query, records, top_k)

    async def answer(self, question: str, records: list[MemoryRecord], max_tokens: Optional[int] = None,
                     logprobs: Optional[int] = None) -> Any:
        """The generator's answer with `records` (already in context order) before the question (see
        serve/prompts.answer_with), or the Refusal of a question that cannot fit (400 naming max_tokens), a
        generator that refuses the request, or one whose server failed. `logprobs`: the answer's tokens with
        that many alternatives each (OpenAI's chat logprobs)."""
        try:
            done = await _asking("max_tokens", answer_with, self.lm, records, question, self.generation,
                                 self.settings.retrieval.reorder, max_tokens, logprobs)
        except PromptTooLong as e:
            return Refusal(400, str(e))
        if isinstance(done, Refusal):
            return done
        generated = done.completion.tokens
        return {"answer": done.text, "used_memories": [r.id for r in done.used], "context_tokens": done.context_tokens,
                "finish_reason": done.completion.finish_reason,
                "answer_tokens": len(generated) if generated is not None else 0,
                "tokens": list(generated) if logprobs is not None and generated is not None else None}


async def _asking(field: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """call(...) in a worker thread (a generator call blocks), or the Refusal its failure stands for: the
    generator refusing the request (a prompt over its context: a 400 naming `field`, the request part to
    change) or a server that failed (502/503/504)."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except PromptTooLong:
        raise
    except GeneratorUnavailable as e:
        return Refusal(e.status, f"generator: {e}")
    except ValueError as e:  # a RayTaskError(ValueError) is one: the generator refused the request
        return Refusal(400, f"{field}: {remote_message(e)}")
