"""Prompts the served agent builds for its generator: memories, then the question in the QA format the tiny
models are trained on, cut to the model's context budget."""

from __future__ import annotations

from typing import Any, Sequence

from memorylab.memory.records import MemoryRecord
from memorylab.metrics.knowmem import clean_answer  # noqa: F401  (re-exported: answers are cleaned alike)

QUESTION = "Question: {question}\nAnswer:"


def question_of(messages: Sequence[dict]) -> str:
    """The last user message is what the agent answers; earlier turns are context the client already has."""
    for m in reversed(messages):
        if m["role"] == "user":
            return m["content"].strip()
    raise ValueError("messages: no message with role 'user' to answer")


def answer_text(memories: Sequence[str], question: str) -> str:
    """Memories one per line, a blank line, then the question (no memories: the plain QA prompt)."""
    return "".join(f"{m}\n" for m in memories) + ("\n" if memories else "") + QUESTION.format(question=question)


def answer_prompt(lm: Any, records: Sequence[MemoryRecord], question: str, budget: int) -> tuple[str, list]:
    """Memories one per line before the question; memories are dropped (least relevant first: the caller's
    order puts the best at both ends, so the middle goes first) until the prompt fits `budget` tokens."""
    kept = list(records)
    tail = QUESTION.format(question=question)
    while True:
        prompt = answer_text([r.text for r in kept], question)
        if not kept or len(lm.encode([prompt])[0]) <= budget:
            break
        kept.pop(len(kept) // 2)
    if len(lm.encode([tail])[0]) > budget:  # the question alone is too long: keep its end, the part asked
        ids = lm.encode([tail])[0][-budget:]
        prompt = lm.decode([ids])[0]
    return prompt, kept
