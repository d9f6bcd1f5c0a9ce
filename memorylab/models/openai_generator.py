"""Any OpenAI-compatible server as a served agent's generator: `vllm serve`, Ray Serve LLM, Ollama, a hosted API,
or another memorylab agent's /v1. The TextGenerator protocol (memorylab.models.protocol) over HTTP, with the
`openai` client as the transport.

What the server cannot say is estimated or refused, never guessed silently:
- Token counts: the API has no tokenizer, so a text counts one token per CHARS_PER_TOKEN characters (rounded
  up), which is what OpenAI quotes for English; prompt budgets are then approximate.
- Log-probabilities: the confidence policy reads the answer tokens' log-probabilities, the listwise reranker the
  top alternatives of one token. `check` asks the server for them once, at start, so an agent whose policy or
  reranker needs what the server does not give is refused before it serves.
- Failures: a timeout is a 504, a server that cannot be reached or is rate-limited a 503, any other failure of
  the server a 502 (`GeneratorUnavailable`, with one line saying why); the client's timeout and retries bound
  every call, so no request waits on a server forever.
"""

from __future__ import annotations

import math
import os
from typing import Any, Optional, Sequence

from memorylab.errors import GeneratorRefused, GeneratorUnavailable, MemorylabError
from memorylab.models.protocol import Completion, GenerationParams, TokenLogprob

CHARS_PER_TOKEN = 4
REFUSALS = (400, 413, 422)  # the server refused the request as made (GeneratorRefused)
MAX_TOP_LOGPROBS = 20  # what OpenAI's API allows; a listwise window needs one alternative per label


class OpenAIGenerator:
    """`api`: "chat" sends each prompt as one user message to /chat/completions (what every server and hosted
    model takes); "completions" sends it as is to /completions (base models, and the QA format of tiny ones)."""

    def __init__(self, base_url: str, model: str, *, api_key: Optional[str] = None, timeout_s: float = 30.0,
                 max_retries: int = 2, api: str = "chat", max_length: int = 4096) -> None:
        from openai import OpenAI

        self.base_url, self.model, self.api, self.timeout_s = base_url.rstrip("/"), model, api, timeout_s
        self.max_length = max_length
        # Servers without keys (vllm serve, Ollama) accept any; the client insists on one.
        self.client = OpenAI(base_url=self.base_url, api_key=api_key or "unused", timeout=timeout_s,
                             max_retries=max_retries)

    @classmethod
    def from_config(cls, config: Any) -> "OpenAIGenerator":
        """From a scenario's `generator` block (source: openai); the key is read from its environment variable."""
        key = os.environ.get(config.api_key_env) if config.api_key_env else None
        # A generator's context is its prompt budget and answer; a judge's (no budget) is the default.
        budget = getattr(config, "max_context_tokens", None)
        return cls(config.base_url, config.model, api_key=key, timeout_s=config.timeout_s,
                   max_retries=config.max_retries, api=config.api,
                   max_length=budget + config.max_new_tokens + 1 if budget else 4096)

    # -- tokens, estimated ----------------------------------------------------------------------------------
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [math.ceil(len(t) / CHARS_PER_TOKEN) for t in texts]

    def clip(self, texts: Sequence[str], max_tokens: int, keep: str = "start") -> list[str]:
        n = max(0, max_tokens) * CHARS_PER_TOKEN
        return [t if len(t) <= n else (t[:n] if keep == "start" else t[len(t) - n:]) for t in texts]

    # -- generation -----------------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        return [c.text for c in self.complete(prompts, params)]

    def complete(self, prompts: Sequence[str], params: GenerationParams,
                 logprobs: Optional[int] = None) -> list[Completion]:
        return [self._complete(prompt, params, logprobs) for prompt in prompts]

    def label_logprobs(self, prompts: Sequence[str], labels: Sequence[str]) -> list[list[float]]:
        """From the top alternatives of the first generated token: a label among them gets its log-probability,
        one that is not gets -inf (it ranks below every label that is)."""
        if len(labels) > MAX_TOP_LOGPROBS:
            raise ValueError(f"{len(labels)} labels: an OpenAI-compatible server lists at most {MAX_TOP_LOGPROBS} "
                             "alternatives of a token; lower the reranker's window")
        params = GenerationParams(max_new_tokens=1)
        out = []
        for prompt in prompts:
            tokens = self._complete(prompt, params, logprobs=MAX_TOP_LOGPROBS).tokens or ()
            found = {text: lp for text, lp in tokens[0].top} if tokens else {}
            out.append([found.get(label, found.get(f" {label}", -math.inf)) for label in labels])
        return out

    def check(self, logprobs: bool = False, top: int = 0) -> None:
        """Refuse (a MemorylabError, one line) a server that does not serve the model, or does not give the
        log-probabilities (`logprobs`) or the `top` alternatives per token that a policy or reranker needs."""
        try:
            served = [m.id for m in self.client.models.list()]
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way, as one line
            raise self._unavailable(e) from None
        if served and self.model not in served:
            raise MemorylabError(f"generator.model {self.model!r} is not served at {self.base_url} (it serves: "
                                 f"{', '.join(served[:10])})")
        if not (logprobs or top):
            return
        tokens = self._complete("Question: Is this working?\nAnswer:", GenerationParams(max_new_tokens=1),
                                logprobs=top).tokens
        if not tokens:
            raise MemorylabError(f"the generator at {self.base_url} gives no log-probabilities, which "
                                 "memory.adaptive.policy confidence and the listwise_first reranker read")
        if top and len(tokens[0].top) < top:
            raise MemorylabError(f"the generator at {self.base_url} lists {len(tokens[0].top)} alternatives of a "
                                 f"token where the listwise_first reranker needs {top} (its window)")

    def _complete(self, prompt: str, params: GenerationParams, logprobs: Optional[int]) -> Completion:
        common: dict[str, Any] = {"model": self.model, "max_tokens": params.max_new_tokens,
                                  "temperature": params.temperature, "top_p": params.top_p}
        if params.seed is not None:
            common["seed"] = params.seed
        if params.stop:
            common["stop"] = list(params.stop)[:4]
        try:
            if self.api == "completions":
                extra = {} if logprobs is None else {"logprobs": max(1, logprobs)}
                choice = self.client.completions.create(prompt=prompt, **common, **extra).choices[0]
                return Completion(choice.text or "", _finish(choice.finish_reason), _completion_tokens(
                    choice.logprobs, logprobs) if logprobs is not None else None)
            extra = {} if logprobs is None else {"logprobs": True, "top_logprobs": logprobs}
            choice = self.client.chat.completions.create(messages=[{"role": "user", "content": prompt}],
                                                         **common, **extra).choices[0]
            return Completion(choice.message.content or "", _finish(choice.finish_reason), _chat_tokens(
                choice.logprobs, logprobs) if logprobs is not None else None)
        except Exception as e:  # noqa: BLE001 - translated to the status the agent answers with
            raise self._unavailable(e) from None

    def _unavailable(self, error: Exception) -> GeneratorUnavailable:
        import openai

        where = f"the generator at {self.base_url}"
        if isinstance(error, openai.APITimeoutError):
            return GeneratorUnavailable(504, f"{where} did not answer within {self.timeout_s:g} s")
        if isinstance(error, openai.APIConnectionError):
            cause = error.__cause__ or error
            return GeneratorUnavailable(503, f"{where} cannot be reached: {type(cause).__name__}: {cause}".strip())
        if isinstance(error, openai.RateLimitError):
            return GeneratorUnavailable(503, f"{where} is rate-limited (HTTP 429); try again later")
        if isinstance(error, openai.APIStatusError):
            detail = " ".join(str(getattr(error, "message", "") or error).split())[:200]
            kind = GeneratorRefused if error.status_code in REFUSALS else GeneratorUnavailable
            return kind(502, f"{where} failed: HTTP {error.status_code}: {detail}")
        return GeneratorUnavailable(502, f"{where} gave an answer that cannot be read: {type(error).__name__}")


def _finish(reason: Optional[str]) -> str:
    return "length" if reason == "length" else "stop"


def _completion_tokens(logprobs: Any, top: Optional[int]) -> tuple[TokenLogprob, ...]:
    """The legacy completions format: parallel lists of tokens, their log-probabilities and top alternatives."""
    if logprobs is None or not logprobs.tokens:
        return ()
    alternatives = logprobs.top_logprobs or [{}] * len(logprobs.tokens)
    return tuple(TokenLogprob(token, float(lp), tuple(sorted((alt or {}).items(), key=lambda kv: -kv[1]))[:top])
                 for token, lp, alt in zip(logprobs.tokens, logprobs.token_logprobs, alternatives) if lp is not None)


def _chat_tokens(logprobs: Any, top: Optional[int]) -> tuple[TokenLogprob, ...]:
    if logprobs is None or not logprobs.content:
        return ()
    return tuple(TokenLogprob(t.token, float(t.logprob), tuple((a.token, float(a.logprob))
                                                               for a in (t.top_logprobs or [])[:top]))
                 for t in logprobs.content)
