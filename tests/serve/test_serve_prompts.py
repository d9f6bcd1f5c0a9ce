"""The answer prompt's budget: memories are dropped least relevant first, in either context order."""

from __future__ import annotations

from memorylab.memory.reorder import reorder_for_context
from memorylab.serve.prompts import answer_prompt
from tests.memory.test_retrieval import memory


class WordLM:
    """One token per word."""

    def encode(self, texts):
        return [t.split() for t in texts]

    def decode(self, ids):
        return [" ".join(i) for i in ids]


RANKED = [memory(i, f"memory number {i} is here") for i in range(1, 6)]  # best first, 5 words each
QUESTION = "Where?"


def budget_for(kept: int) -> int:
    """Tokens of a prompt with `kept` memories."""
    return len(WordLM().encode([answer_prompt(WordLM(), RANKED[:kept], QUESTION, 10_000)[0]])[0])


def test_best_first_records_lose_their_tail():
    prompt, used = answer_prompt(WordLM(), RANKED, QUESTION, budget_for(3), best_at_both_ends=False)
    assert used == RANKED[:3] and prompt.startswith("memory number 1 is here\nmemory number 2")


def test_records_best_at_both_ends_lose_their_middle():
    _, used = answer_prompt(WordLM(), reorder_for_context(RANKED), QUESTION, budget_for(3))
    assert sorted(r.id for r in used) == sorted(r.id for r in RANKED[:3])


def test_a_question_alone_over_the_budget_keeps_its_end():
    prompt, used = answer_prompt(WordLM(), RANKED, "a b c d e f g h", 3)
    assert used == [] and prompt == "g h Answer:"
