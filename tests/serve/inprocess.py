"""The real FastAPI app over a real Retriever (MiniLM, the LanceDB store, BM25) in this process, without Ray
Serve: request checks in a second or two instead of the served app's 25 s start (conftest.py). Deployments
the Ingress calls (the MemoryAgent, the Generator) are plain objects behind `Handle`, which answers `.remote`
the way a Serve deployment handle does."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

from fastapi.testclient import TestClient
from served_app import KEYS, MODEL_NAME

from memorylab.models.protocol import Completion, GenerationParams, TokenLogprob
from memorylab.schema.memory_agent import GeneratorConfig, MemorySettings, ServeSettings
from memorylab.serve import ingress
from memorylab.serve.auth import KeyRing
from memorylab.serve.deps import current_ingress
from memorylab.serve.generator import text_generator
from memorylab.serve.ingress import IngressConfig
from memorylab.serve.retriever import Retriever


class _Response:
    """A DeploymentResponse's two uses: `await` it (on the event loop) or `.result()` (in a worker thread)."""

    def __init__(self, fn: Any, args: tuple, kwargs: dict) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def result(self) -> Any:
        out = self.fn(*self.args, **self.kwargs)
        return asyncio.run(out) if inspect.iscoroutine(out) else out

    def __await__(self):
        out = self.fn(*self.args, **self.kwargs)
        return (out if inspect.iscoroutine(out) else asyncio.sleep(0, out)).__await__()


class Handle:
    """`handle.method.remote(...)` for a plain object, as for a deployment."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        return SimpleNamespace(remote=lambda *a, **k: _Response(getattr(self._target, name), a, k))


class WordGenerator:
    """A TextGenerator (and the ModelActor methods RemoteLM asks of one) with one token per word and `context`
    tokens of context, refusing what LogitsLM refuses: a start token + prompt + new tokens over the context.
    It answers `answer`, one word a token, cut at max_new_tokens."""

    def __init__(self, context: int = 256, answer: str = "Bern") -> None:
        self.max_length = context
        self.answer = answer

    def lm_settings(self) -> dict:
        return {"max_length": self.max_length}

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def clip(self, texts: list[str], max_tokens: int, keep: str = "start") -> list[str]:
        words = [t.split() for t in texts]
        return [" ".join(w[:max_tokens] if keep == "start" else w[len(w) - max_tokens:]) for w in words]

    def complete(self, prompts: list[str], params: GenerationParams, logprobs: Optional[int] = None) -> list[Completion]:
        for i, p in enumerate(prompts):
            n = 1 + len(p.split())
            if n + params.max_new_tokens > self.max_length:
                raise ValueError(f"text {i} has {n} tokens plus {params.max_new_tokens} new tokens, over the "
                                 f"model's {self.max_length}-token context")
        words = self.answer.split()
        pieces = [f" {w}" for w in words[: params.max_new_tokens]]
        reason = "length" if len(words) > params.max_new_tokens else "stop"
        tokens = tuple(TokenLogprob(w, -0.5, ((w, -0.5),)[: logprobs or 0]) for w in pieces)
        return [Completion("".join(pieces), reason, tokens if logprobs is not None else None) for _ in prompts]

    def generate(self, prompts: list[str], params: GenerationParams) -> list[str]:
        return [c.text for c in self.complete(prompts, params)]

    def label_logprobs(self, prompts: list[str], labels: list[str]) -> list[list[float]]:
        return [[-float(i) for i in range(len(labels))] for _ in prompts]


def memory_settings(**sections: dict) -> MemorySettings:
    """MemorySettings with `section={key: value}` overrides."""
    memory = MemorySettings()
    return memory.model_copy(update={name: getattr(memory, name).model_copy(update=values)
                                     for name, values in sections.items()})


def start(folder: Path, memory: Optional[MemorySettings] = None, *, agent: Any = None, generator: Any = None,
          generator_replicas: int = 1, generation: Optional[GeneratorConfig] = None) -> SimpleNamespace:
    """This process's Ingress replica (what the routes read through `current_ingress`); `client(replica)`
    talks to it."""
    memory = memory or memory_settings()
    retriever = Retriever(str(folder), memory)

    async def dense_arm(query, service=retriever.service):  # @serve.batch needs a replica: the same, one query
        return service.dense_arm([query])[0]

    retriever._dense_arm = dense_arm
    config = IngressConfig(folder=str(folder), model_name=MODEL_NAME, memory=memory,
                           generation=generation or GeneratorConfig(max_new_tokens=8),
                           serve=ServeSettings(generator_replicas=generator_replicas),
                           keys={k: t for t, k in KEYS.items()})
    lm = text_generator(generator) if generator is not None else None
    return SimpleNamespace(config=config, retriever=retriever, keys=KeyRing(config.keys), agent=agent, lm=lm)


def with_settings(replica: SimpleNamespace, **changes: Any) -> SimpleNamespace:
    """The replica with some of its config replaced (a serve section's fields go under serve=...)."""
    serve = changes.pop("serve", None)
    if serve is not None:
        changes["serve"] = replica.config.serve.model_copy(update=serve)
    return SimpleNamespace(**{**vars(replica), "config": dataclasses.replace(replica.config, **changes)})


def client(replica: SimpleNamespace) -> TestClient:
    ingress.fastapi_app.dependency_overrides[current_ingress] = lambda: replica
    return TestClient(ingress.fastapi_app, raise_server_exceptions=False)
