"""The reader's abstention threshold, set on held-out examples as SQuAD 2.0 readers set their no-answer one."""

from __future__ import annotations

from types import SimpleNamespace

from memorylab.data.reader import ReaderExample
from memorylab.models.reader_training import abstain_threshold


class ScoredReader:
    """A reader whose gate and spans are given: token ids are the characters' codes."""

    tokenizer = SimpleNamespace(decode=lambda ids, skip_special_tokens=True: "".join(map(chr, ids)))

    def __init__(self, scored):
        self._scored = scored

    def scored(self, prompts):
        assert len(prompts) == len(self._scored)
        return self._scored


def example(answer: str, abstain: bool = False) -> ReaderExample:
    evidence = "" if abstain else f"Ann lives in {answer}."
    return ReaderExample("abstain" if abstain else "copy", ("Ann lives in Rome.",), "Where does Ann live?",
                         "unknown" if abstain else answer, evidence)


def ids(text: str) -> list[int]:
    return [ord(c) for c in text]


def test_the_threshold_answers_the_most_examples_exactly():
    examples = [example("Rome"), example("Oslo"), example("Lima"), example("", abstain=True),
                example("", abstain=True)]
    # The gate's abstention probabilities: the copies at 0.1 to 0.6, the abstentions at 0.3 and 0.4 (the
    # gate leans towards copying: at 0.5 both abstentions would be answered with a span).
    scored = [(ids("Rome"), 0.1), (ids("Oslo"), 0.2), (ids("Lim"), 0.6), (ids("Rome"), 0.3), (ids("Oslo"), 0.4)]
    threshold = abstain_threshold(ScoredReader(scored), examples)
    assert threshold == 0.2  # both copies kept, both abstentions caught (the wrong span "Lim" is lost either way)


def test_equal_thresholds_keep_the_nearest_to_one_half_and_unread_prompts_do_not_count():
    examples = [example("Rome"), example("", abstain=True), example("Oslo")]
    scored = [(ids("Rome"), 0.1), (ids("Oslo"), 0.9), None]
    assert abstain_threshold(ScoredReader(scored), examples) == 0.5
    assert abstain_threshold(ScoredReader([None]), [example("Rome")]) == 0.5
