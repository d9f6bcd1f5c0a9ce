"""Adaptive retrieval: decide, per query, whether to retrieve memories at all (and how to weight granularities).

- `always` / `never`: the fixed baselines.
- `confidence` (Adapt-LLM / FLARE style): ask the generator the question with no memory, greedy-decode a short
  answer, and retrieve when the model is unsure of it. Confidence is the *minimum* probability of the answer's
  tokens, i.e. FLARE's rule "retrieve if any token is below the threshold". Why the minimum: the doubt about an
  unknown person sits in one or two tokens (the first token of a name, a city, a year); the rest are
  near-certain continuations of what was chosen ("Valeri" -> "eshire"), so a mean is pulled towards 1 and
  shrinks with answer length. On a tiny model trained on the QA of known people (as in the tests), the
  minimum stays close to 1 for every known answer and falls far below it for most new people, while the mean
  crowds known and new answers alike close to 1: the minimum leaves a wide gap for one threshold that needs
  no tuning per model. The default 0.9 leans towards retrieving: a needless retrieval costs a little context,
  a missed one a confident hallucination. `aggregate="mean"` is available (on undertrained models it
  separates known from new as well, only in a narrow band near 1).
- `entropy` (MemGAS-style router, "From Single to Multi-Granularity: Toward Long-Term Memory Association and
  Selection of Conversational Agents"): from the query's similarity to candidates at several granularities
  (turn, session, summary, ...), softmax each granularity's scores at a temperature, take the normalised
  entropy H / log(n), and call 1 - H/log(n) that granularity's certainty (1: one memory stands out, 0: all
  alike). Granularity weights are the certainties normalised to sum 1 (equal weights when all are 0).
  Decision rule: retrieve when the most certain granularity's certainty is above the threshold, i.e. some
  memory clearly stands out somewhere; when every distribution is flat nothing is specifically relevant and
  retrieving would only add noise to the prompt.

Policies speak only the TextGenerator protocol (memorylab.models.protocol: `complete` with log-probabilities,
`count_tokens`, `clip`), so a local backend, an actor or an OpenAI-compatible server works alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Protocol, Sequence, runtime_checkable

import numpy as np
from scipy.special import softmax
from scipy.stats import entropy

from memorylab.data.prompts import qa_prompt
from memorylab.models.protocol import GenerationParams

POLICIES = ("always", "never", "confidence", "entropy")
DEFAULT_THRESHOLDS = {"confidence": 0.9, "entropy": 0.3}
AGGREGATES = ("min", "mean")


@dataclass(frozen=True)
class RetrievalDecision:
    retrieve: bool
    policy: str
    score: Optional[float]  # confidence (confidence) or the top granularity's certainty (entropy); None otherwise
    reason: str
    weights: Optional[dict[str, float]] = None  # per granularity (entropy only), summing to 1


Similarities = Mapping[str, Sequence[float]]


@runtime_checkable
class RetrievalPolicy(Protocol):
    name: str

    def decide(self, query: str, similarities: Optional[Similarities] = None) -> RetrievalDecision:
        """Whether to retrieve for `query`; `similarities` (granularity -> scores) feed the entropy router."""


class FixedPolicy:
    """`always` or `never`: the baselines every adaptive policy is compared with."""

    def __init__(self, retrieve: bool) -> None:
        self.retrieve = retrieve
        self.name = "always" if retrieve else "never"

    def decide(self, query: str, similarities: Optional[Similarities] = None) -> RetrievalDecision:
        return RetrievalDecision(self.retrieve, self.name, None, f"policy {self.name!r} "
                                 f"{'always' if self.retrieve else 'never'} retrieves")


# -- confidence -------------------------------------------------------------------------------------------

class ConfidencePolicy:
    """Retrieve when the generator's own no-memory answer has confidence below the threshold."""

    name = "confidence"

    def __init__(self, generator: Any, *, threshold: float = DEFAULT_THRESHOLDS["confidence"],
                 aggregate: str = "min", max_new_tokens: int = 16, max_prompt_tokens: Optional[int] = None) -> None:
        """`max_prompt_tokens` bounds a question's prompt (a longer question keeps its end, the part asked),
        and so does what the generator's context leaves beside its start token and the answer, when it says
        (`max_length`); None: only the latter, if any."""
        if generator is None:
            raise ValueError("generator is required for the confidence policy (an LM-protocol model)")
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be a probability in [0, 1] for the confidence policy, got {threshold}")
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
        self.generator, self.threshold, self.aggregate = generator, threshold, aggregate
        # The QA training format ends an answer at the line break (then EOS); nothing past it is the answer.
        self.params = GenerationParams(max_new_tokens=max_new_tokens, stop=("\n",))
        context = getattr(generator, "max_length", None)
        room = context - 1 - max_new_tokens if isinstance(context, int) else None
        # A given budget (the agent's max_context_tokens) is cut to the room too, as the answer's prompt is:
        # otherwise a question as long as the budget overflows the context by the answer's tokens.
        derived = room is not None and (max_prompt_tokens is None or room < max_prompt_tokens)
        if derived:
            max_prompt_tokens = room
        if max_prompt_tokens is not None and max_prompt_tokens < 16:
            raise ValueError(f"the generator's {context}-token context leaves no room for a question beside "
                             f"{max_new_tokens} answer tokens (>= 16 needed)" if derived else
                             f"max_prompt_tokens must leave room for a question (>= 16), got {max_prompt_tokens}")
        self.max_prompt_tokens = max_prompt_tokens

    def answer_confidences(self, questions: Sequence[str]) -> list[tuple[str, float]]:
        """(greedy answer, confidence) per question, batched: one generation, with the log-probability of every
        answer token, for all."""
        if not questions:
            return []
        # The prompt ends at "Answer:" because " " belongs to the answer's first token in training (see
        # evaluation.knowmem_questions).
        completions = self.generator.complete(self._prompts(questions), self.params, logprobs=0)
        out = []
        for completion in completions:
            probs = np.exp([t.logprob for t in completion.tokens or ()])
            if not completion.text.strip() or not probs.size:
                out.append((completion.text, 0.0))  # no answer at all: nothing to say without memory
            else:
                out.append((completion.text, float(probs.min() if self.aggregate == "min" else probs.mean())))
        return out

    def _prompts(self, questions: Sequence[str]) -> list[str]:
        """The QA prompt of each question, its question cut to its end where the prompt would pass the budget
        (the generator refuses a prompt longer than its context; a served agent's users send long messages)."""
        prompts = [qa_prompt(q) for q in questions]
        budget = self.max_prompt_tokens
        # A token covers at least one byte: a prompt with no more bytes than the budget fits, and the usual short
        # question costs no counting call (the generator may be remote).
        if budget is None or all(len(p.encode("utf-8")) <= budget for p in prompts):
            return prompts
        counts = self.generator.count_tokens(prompts + [qa_prompt("")])
        room = budget - counts.pop() - 2  # 2: the seams between question and template may tokenize apart
        if room < 1:
            raise ValueError(f"a prompt budget of {budget} tokens leaves no room for a question in the QA template")
        long = [i for i, count in enumerate(counts) if count > budget]
        for i, tail in zip(long, self.generator.clip([questions[i] for i in long], room, keep="end")):
            prompts[i] = qa_prompt(tail.strip())
        return prompts

    def decide_many(self, queries: Sequence[str]) -> list[RetrievalDecision]:
        return [self._decision(a, c) for a, c in self.answer_confidences(queries)]

    def decide(self, query: str, similarities: Optional[Similarities] = None) -> RetrievalDecision:
        return self.decide_many([query])[0]

    def _decision(self, answer: str, confidence: float) -> RetrievalDecision:
        what = f"{self.aggregate} answer-token probability {confidence:.3f} of {answer.strip()!r}"
        if confidence < self.threshold:
            return RetrievalDecision(True, self.name, confidence,
                                     f"{what} < threshold {self.threshold}: unsure without memory")
        return RetrievalDecision(False, self.name, confidence,
                                 f"{what} >= threshold {self.threshold}: the model knows the answer")


# -- entropy ----------------------------------------------------------------------------------------------

def certainty(scores: Sequence[float], temperature: float) -> float:
    """1 - H(softmax(scores / temperature)) / log(n): 1 when one candidate takes all the mass, 0 when uniform.
    Fewer than two candidates give 0: nothing to stand out from, so no evidence (and no weight)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size < 2:
        return 0.0
    h = entropy(softmax(s / temperature))
    return float(min(1.0, max(0.0, 1.0 - h / math.log(s.size))))  # clamp float noise at the ends


def granularity_weights(similarities: Similarities, temperature: float) -> tuple[dict[str, float], dict[str, float]]:
    """(weights, certainties) per granularity; weights are the certainties normalised to sum 1, or equal
    when no granularity has any (all uniform), so the caller can always weight by them."""
    if not similarities:
        raise ValueError("similarities is empty; the entropy policy needs scores for at least one granularity")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    certainties = {}
    for name, scores in similarities.items():
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim != 1 or not np.all(np.isfinite(s)):
            raise ValueError(f"similarities[{name!r}] must be a flat list of finite numbers")
        certainties[name] = certainty(s, temperature)
    total = sum(certainties.values())
    if total <= 0:
        return {name: 1 / len(certainties) for name in certainties}, certainties
    return {name: c / total for name, c in certainties.items()}, certainties


class EntropyPolicy:
    """MemGAS-style entropy router over granularities; see the module docstring for the decision rule."""

    name = "entropy"

    def __init__(self, *, threshold: float = DEFAULT_THRESHOLDS["entropy"], temperature: float = 0.1) -> None:
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1] for the entropy policy (a certainty), got {threshold}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        # 0.1 suits cosine similarities in [-1, 1]: at 1.0 a 0.5 cosine gap barely moves the softmax.
        self.threshold, self.temperature = threshold, temperature

    def decide(self, query: str, similarities: Optional[Similarities] = None) -> RetrievalDecision:
        if similarities is None:
            raise ValueError("similarities is required for the entropy policy (granularity -> similarity scores)")
        weights, certainties = granularity_weights(similarities, self.temperature)
        top = max(certainties, key=lambda g: certainties[g])
        score = certainties[top]
        if score > self.threshold:
            return RetrievalDecision(True, self.name, score, f"a {top!r} memory stands out (certainty {score:.3f} > "
                                     f"threshold {self.threshold})", weights)
        return RetrievalDecision(False, self.name, score, f"no memory stands out at any granularity (best: {top!r}, "
                                 f"certainty {score:.3f} <= threshold {self.threshold})", weights)


def make_policy(name: str, *, threshold: float | None = None, generator: Any = None, temperature: float = 0.1,
                aggregate: str = "min", max_new_tokens: int = 16,
                max_prompt_tokens: Optional[int] = None) -> RetrievalPolicy:
    """The retrieval policy called `name`; `threshold` None takes the policy's default (DEFAULT_THRESHOLDS).
    `generator`, `aggregate`, `max_new_tokens` and `max_prompt_tokens` serve confidence; `temperature` serves
    entropy."""
    if name in ("always", "never"):
        return FixedPolicy(name == "always")
    if name == "confidence":
        return ConfidencePolicy(generator, threshold=DEFAULT_THRESHOLDS[name] if threshold is None else threshold,
                                aggregate=aggregate, max_new_tokens=max_new_tokens,
                                max_prompt_tokens=max_prompt_tokens)
    if name == "entropy":
        return EntropyPolicy(threshold=DEFAULT_THRESHOLDS[name] if threshold is None else threshold,
                             temperature=temperature)
    raise ValueError(f"unknown retrieval policy {name!r}; expected one of {', '.join(POLICIES)}")
