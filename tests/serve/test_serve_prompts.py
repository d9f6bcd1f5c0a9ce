"""The answer prompt's budget: memories are dropped least relevant first, in either context order."""

from __future__ import annotations

import pytest

from inprocess import WordGenerator

from memorylab.memory.reorder import reorder_for_context
from memorylab.serve.prompts import PromptTooLong, answer_prompt
from tests.memory.test_retrieval import memory


RANKED = [memory(i, f"memory number {i} is here") for i in range(1, 6)]  # best first, 5 words each
QUESTION = "Where?"


def budget_for(kept: int) -> int:
    """Tokens of a prompt with `kept` memories."""
    return answer_prompt(WordGenerator(), RANKED[:kept], QUESTION, 10_000)[2]


def test_best_first_records_lose_their_tail():
    prompt, used, _ = answer_prompt(WordGenerator(), RANKED, QUESTION, budget_for(3), best_at_both_ends=False)
    assert used == RANKED[:3] and prompt.startswith("memory number 1 is here\nmemory number 2")


def test_records_best_at_both_ends_lose_their_middle():
    _, used, _ = answer_prompt(WordGenerator(), reorder_for_context(RANKED), QUESTION, budget_for(3))
    assert sorted(r.id for r in used) == sorted(r.id for r in RANKED[:3])


def test_a_question_alone_over_the_budget_keeps_its_end():
    prompt, used, _ = answer_prompt(WordGenerator(), RANKED, "a b c d e f g h", 3)
    assert used == [] and prompt == "g h Answer:"


def test_the_answers_room_drops_memories_before_refusing():
    # The room the answer's max_tokens leaves the prompt bounds it like the budget does: memories go first
    # (the prompt used to be cut to the budget alone, and the generator then refused it, blaming max_tokens).
    prompt, used, _ = answer_prompt(WordGenerator(), RANKED, QUESTION, 10_000, best_at_both_ends=False, room=budget_for(2))
    assert used == RANKED[:2] and len(prompt.split()) == budget_for(2)
    _, used, _ = answer_prompt(WordGenerator(), RANKED, QUESTION, budget_for(3), best_at_both_ends=False, room=budget_for(4))
    assert used == RANKED[:3]  # the smaller of the two wins


def test_a_question_alone_over_the_room_is_refused_not_cut():
    with pytest.raises(PromptTooLong, match="question alone takes 10 tokens"):
        answer_prompt(WordGenerator(), RANKED, "a b c d e f g h", 10_000, room=9)
    prompt, used, _ = answer_prompt(WordGenerator(), RANKED, "a b c d e f g h", 3, room=10)  # over the budget only: cut
    assert used == [] and prompt == "g h Answer:"
