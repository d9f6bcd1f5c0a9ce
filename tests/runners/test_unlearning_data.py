"""What the unlearning runner trains on for TOFU: never the texts its truth ratio scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from memorylab.data.tofu import default_tofu_dir
from memorylab.errors import MemorylabError
from memorylab.runners.unlearning_data import unlearning_data
from memorylab.scenario_loader import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def tofu():
    try:
        default_tofu_dir()
    except MemorylabError as exc:
        pytest.skip(f"TOFU data not available: {exc}")
    scenario = load_scenario(SCENARIOS / "tofu_tiny.yaml")
    return scenario, unlearning_data(scenario)


def test_training_never_reads_the_answers_the_truth_ratio_scores(tofu):
    from memorylab.data.tofu import load_tofu

    _, data = tofu
    splits = load_tofu()
    scored = {a for it in splits.forget + splits.retain_perturbed
              for a in (it.paraphrased_answer, *it.perturbed_answers) if a}
    forget_docs, wrong = data.forget_docs(data.units), data.uld_retain_extra(data.units)
    assert len(forget_docs) == len(wrong) == len(splits.forget)
    trained = forget_docs + wrong
    assert not {a for a in scored for doc in trained if doc.endswith("Answer: " + a)}
    retain_answers = {it.answer for it in splits.retain}
    assert all(doc.split("\nAnswer: ", 1)[1] in retain_answers for doc in wrong)


def test_the_retain_truth_ratio_keeps_to_the_retained_authors(tofu):
    scenario, _ = tofu
    five = scenario.model_copy(update={"data": scenario.data.model_copy(update={"retain_authors": 5})})
    data = unlearning_data(five)
    ev = data.eval_data(None, five.eval, None)
    retained = {doc.split("\nAnswer: ")[0].removeprefix("Question: ") for doc in data.retain_docs}
    assert len(retained) <= 100 and ev.truth_retain
    assert all(it.question in retained for it in ev.truth_retain)


def test_too_few_retained_authors_for_the_truth_ratio_is_refused(tofu):
    scenario, _ = tofu
    few = scenario.model_copy(update={"data": scenario.data.model_copy(update={"retain_authors": 0})})
    with pytest.raises(MemorylabError, match="data.retain_authors: the first 0 retain author"):
        unlearning_data(few)
