"""The LM protocol: the narrow, batched interface every backend implements and every metric consumes.

Batch in, batch out, no Ray inside: an actor wraps a backend, it is not one. Any object with these methods
(a local backend, a `RemoteLM` over an actor, the ULD-combined model) can be evaluated. A served agent needs
less of its generator (`TextGenerator`: text, token counts, log-probabilities), which a remote OpenAI-compatible
server gives too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, Sequence, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class SpeculativeParams:
    """Speculative decoding (memorylab.decoding.speculative): a small drafter proposes `gamma` tokens and the
    model verifies them in one forward. Greedy output is the model's own greedy output; sampled output has the
    model's own distribution. Data only (hashable, picklable): the LM that generates loads the drafter."""

    # A drafter folder or HF id sharing the model's tokenizer; None: the drafter attached to the LM (lm.drafter).
    drafter: Optional[str] = None
    gamma: int = 4
    # Choose gamma each round from the measured acceptance rate and drafter/verifier costs (1..max_gamma).
    adaptive: bool = False
    max_gamma: int = 8
    # VocabTrim: the drafter's head over only its `vocab` most frequent tokens (counts saved beside it).
    vocab: Optional[int] = None

    def __post_init__(self) -> None:
        if not 1 <= self.gamma <= self.max_gamma:
            raise ValueError(f"gamma must be in 1..max_gamma ({self.max_gamma}), got {self.gamma}")
        if self.vocab is not None and self.vocab < 1:
            raise ValueError(f"vocab must be >= 1, got {self.vocab}")


@dataclass(frozen=True)
class GenerationParams:
    """How to continue a prompt. temperature 0 means greedy, which is what every metric uses."""

    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    seed: Optional[int] = None
    # A generation stops at the first token whose text contains one of these (and is cut there).
    stop: tuple[str, ...] = field(default_factory=tuple)
    # None: plain decoding. Set: the same output (greedy) or distribution (sampling), drafted and verified.
    speculative: Optional[SpeculativeParams] = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        # A bare string is one stop string; iterating it would make every character a stop. A list becomes
        # a tuple so the params stay hashable.
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if not all(isinstance(s, str) for s in stop):
            raise TypeError(f"stop must be strings, got {stop!r}")
        if "" in stop:
            raise ValueError("an empty stop string would end every generation at its first token")
        object.__setattr__(self, "stop", stop)

    @property
    def greedy(self) -> bool:
        # Below 1e-5 the softmax of logits / temperature overflows to NaN; such a temperature means greedy
        # anyway (vLLM draws the same line).
        return self.temperature < 1e-5


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: its text, its log-probability, and the most likely alternatives at its place."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Completion:
    """A generation, and why it ended: "stop" (end of text, or a stop string) or "length" (max_new_tokens)."""

    text: str
    finish_reason: str
    tokens: Optional[tuple[TokenLogprob, ...]] = None  # the tokens of `text`, when log-probabilities were asked


@runtime_checkable
class TextGenerator(Protocol):
    """What a served memory agent asks of the model that answers (memorylab/serve/): text in, text out, with
    log-probabilities where the model gives them. A local LM implements it, and so does any OpenAI-compatible
    server (memorylab/models/openai_generator.py), whose tokens are counted only approximately."""

    max_length: int  # the context, in tokens: a prompt, its start token and the new tokens must fit

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """How many tokens each text takes."""

    def clip(self, texts: Sequence[str], max_tokens: int, keep: str = "start") -> list[str]:
        """Each text cut to at most `max_tokens` tokens, keeping its start or (keep="end") its end."""

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        """The continuation of each prompt (without the prompt)."""

    def complete(self, prompts: Sequence[str], params: GenerationParams,
                 logprobs: Optional[int] = None) -> list[Completion]:
        """`generate` with each generation's finish reason and, when `logprobs` is given (the alternatives to
        list per token, 0 for none), the log-probability of each of its tokens."""

    def label_logprobs(self, prompts: Sequence[str], labels: Sequence[str]) -> list[list[float]]:
        """For each prompt, the log-probability that its next token is each label (-inf where the model gives
        none); the labels must be single tokens after the prompts' last line."""


@runtime_checkable
class LM(Protocol):
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens."""

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Texts of token-id sequences."""

    def token_logprobs(self, texts: Sequence[str]) -> list[np.ndarray]:
        """log p(x_t | x_<t) for every token of each text (conditioned on BOS), float64."""

    def token_logprob_moments(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(log p(x_t), E_z[log p(z)], Var_z[log p(z)]) per position, the inputs of Min-K%++."""

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Sum of log p(continuation tokens | context) for each (context, continuation)."""

    def next_token_logits(self, input_ids: Any, attention_mask: Any = None, past: Any = None) -> tuple[Any, Any]:
        """Logits of the next token for each row (B, V) and the updated cache."""

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        """The continuation of each prompt (without the prompt)."""
