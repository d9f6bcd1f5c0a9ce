"""Prompts the served agent builds for its generator: memories, then the question in the QA format the tiny
models are trained on, cut to the model's context budget."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from memorylab.data.prompts import qa_prompt
from memorylab.memory.records import MemoryRecord


def question_of(messages: Sequence[dict]) -> str:
    """The last user message is what the agent answers; earlier turns are context the client already has."""
    for m in reversed(messages):
        if m["role"] == "user":
            return m["content"].strip()
    raise ValueError("messages: no message with role 'user' to answer")


def answer_text(memories: Sequence[str], question: str) -> str:
    """Memories one per line, a blank line, then the question (no memories: the plain QA prompt)."""
    return "".join(f"{m}\n" for m in memories) + ("\n" if memories else "") + qa_prompt(question)


class PromptTooLong(ValueError):
    """The question alone does not fit beside the tokens the answer may generate."""


def answer_prompt(lm: Any, records: Sequence[MemoryRecord], question: str, budget: int,
                  best_at_both_ends: bool = True, room: Optional[int] = None) -> tuple[str, list]:
    """Memories one per line before the question; memories are dropped, least relevant first, until the
    prompt fits `budget` tokens: from the middle when the records come best at both ends (reorder_for_context),
    from the end when they come best first.

    `room`: the tokens the generator leaves the prompt beside the answer (its context less the start token
    and the answer's max tokens). The prompt then fits min(budget, room): memories go first, so a large
    max_tokens costs memories, not a refusal; only a question that alone is over `room` is refused
    (PromptTooLong), where one that is only over `budget` keeps its end.

    Every candidate prompt is tokenized in one call: the generator may be a remote deployment, and one call
    per dropped memory would be one round trip each."""
    limit = budget if room is None else min(budget, room)
    candidates = [list(records)]
    while candidates[-1]:
        fewer = list(candidates[-1])
        fewer.pop(len(fewer) // 2 if best_at_both_ends else -1)
        candidates.append(fewer)
    prompts = [answer_text([r.text for r in kept], question) for kept in candidates]
    encoded = lm.encode(prompts)
    for prompt, kept, ids in zip(prompts, candidates, encoded):
        if len(ids) <= limit:
            return prompt, kept
    question = encoded[-1]  # the question alone
    if room is not None and len(question) > room:
        raise PromptTooLong(f"the question alone takes {len(question)} tokens")
    # Even the question alone is over the budget: keep its end, the part asked.
    return lm.decode([question[-limit:]])[0], []
