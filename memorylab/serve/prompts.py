"""Prompts the served agent builds for its generator, and the answer it gets: memories, then the question in the
QA format the tiny models are trained on (and their reader, memorylab/data/reader.py), cut to the model's
context budget. An OpenAI-compatible generator (an instruction-following model) also reads one line saying
how to answer, with the abstention text the evaluation expects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from memorylab.data.prompts import memory_prompt
from memorylab.memory.records import MemoryRecord
from memorylab.metrics.knowmem import clean_answer
from memorylab.models.protocol import Completion, GenerationParams
from memorylab.schema.memory_agent import GeneratorConfig

ANSWER_STOPS = ("\n", "Question:")
INSTRUCTION = ("Answer the question below from the memories above, in a few words. If they do not say, "
               "answer \"{abstain}\".")


def question_of(messages: Sequence[dict]) -> str:
    """The last user message is what the agent answers; earlier turns are context the client already has."""
    for m in reversed(messages):
        if m["role"] == "user":
            return m["content"].strip()
    raise ValueError("messages: no message with role 'user' to answer")


class PromptTooLong(ValueError):
    """The question alone does not fit beside the tokens the answer may generate."""


def answer_prompt(lm: Any, records: Sequence[MemoryRecord], question: str, budget: int,
                  best_at_both_ends: bool = True, room: Optional[int] = None,
                  instruction: Optional[str] = None) -> tuple[str, list, int]:
    """(prompt, the records kept in it, its tokens): memories one per line before the question; memories are
    dropped, least relevant first, until the prompt fits `budget` tokens: from the middle when the records come
    best at both ends (reorder_for_context), from the end when they come best first.

    `room`: the tokens the generator leaves the prompt beside the answer (its context less the start token
    and the answer's max tokens). The prompt then fits min(budget, room): memories go first, so a large
    max_tokens costs memories, not a refusal; only a question that alone is over `room` is refused
    (PromptTooLong), where one that is only over `budget` keeps its end.

    Every candidate prompt is counted in one call: the generator may be a remote deployment, and one call
    per dropped memory would be one round trip each. `lm` is a TextGenerator (memorylab.models.protocol)."""
    limit = budget if room is None else min(budget, room)
    candidates = [list(records)]
    while candidates[-1]:
        fewer = list(candidates[-1])
        fewer.pop(len(fewer) // 2 if best_at_both_ends else -1)
        candidates.append(fewer)
    lines = [instruction] if instruction else []
    prompts = [memory_prompt([r.text for r in kept] + lines if kept else [], question) for kept in candidates]
    counts = lm.count_tokens(prompts)
    for prompt, kept, count in zip(prompts, candidates, counts):
        if count <= limit:
            return prompt, kept, count
    question_tokens = counts[-1]  # the question alone
    if room is not None and question_tokens > room:
        raise PromptTooLong(f"the question alone takes {question_tokens} tokens")
    # Even the question alone is over the budget: keep its end, the part asked.
    return lm.clip([prompts[-1]], limit, keep="end")[0], [], limit


@dataclass(frozen=True)
class Answer:
    text: str  # the answer, cleaned as every metric reads answers (first line, stripped)
    used: list  # the records the prompt kept
    context_tokens: int  # the prompt's tokens
    completion: Completion  # the generation itself: its finish reason, and its tokens when asked


def answer_with(lm: Any, records: Sequence[MemoryRecord], question: str, generation: GeneratorConfig,
                best_at_both_ends: bool, max_tokens: Optional[int] = None, logprobs: Optional[int] = None) -> Answer:
    """The generator's answer with `records` (in context order) before the question. The prompt gets
    max_context_tokens, or less when the answer's max_tokens needs the room: memories are dropped first, and only
    a question that cannot fit at all is refused (PromptTooLong, naming max_tokens). `logprobs`: the answer's
    tokens with that many alternatives each. Blocking (the generator may be remote): the served agent calls it
    in a worker thread."""
    max_new = max_tokens or generation.max_new_tokens
    context = lm.max_length
    room = context - 1 - max_new  # a local generator puts a start token before the prompt
    instruction = INSTRUCTION.format(abstain=generation.reader.abstain) if generation.source == "openai" else None
    try:
        prompt, used, tokens = answer_prompt(lm, records, question, generation.max_context_tokens, best_at_both_ends,
                                             room, instruction)
    except PromptTooLong as e:
        raise PromptTooLong(f"max_tokens: {max_new} new tokens leave {max(room, 0)} of the model's {context}-token "
                            f"context to the prompt, and {e}") from None
    params = GenerationParams(max_new_tokens=max_new, stop=ANSWER_STOPS)
    completion = lm.complete([prompt], params, max(logprobs or 0, 0))[0]
    return Answer(clean_answer(completion.text), list(used), tokens, completion)
