"""What the unlearning runner trains on for TOFU: never the texts its truth ratio scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from memorylab.data.tofu import default_tofu_dir
from memorylab.errors import MemorylabError
from memorylab.runners.unlearning.data import unlearning_data
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
    forget_docs, wrong = data.forget_docs(data.units), data.wrong_answers(data.units)
    assert len(forget_docs) == len(wrong) == len(splits.forget)
    trained = forget_docs + wrong
    assert not {a for a in scored for doc in trained if doc.answer == " " + a}
    retain_answers = {it.answer for it in splits.retain}
    assert all(doc.answer.removeprefix(" ") in retain_answers for doc in wrong)


def test_tofu_trains_on_examples_whose_questions_are_not_scored(tofu):
    """TOFU fine-tunes and unlearns on QA pairs one a row, the question's tokens masked: every training document
    (target, retrain, forget, retain, ULD's wrong answers) is an Example whose prompt is the question."""
    from memorylab.data.prompts import qa_prompt
    from memorylab.models.documents import Example

    _, data = tofu
    every = (data.target_corpus + data.retrain_corpus + data.retain_docs + data.forget_docs(data.units)
             + data.wrong_answers(data.units))
    assert all(isinstance(d, Example) and d.prompt.startswith("Question: ") and d.prompt.endswith("\nAnswer:")
               for d in every)
    first = data.forget_docs(data.units)[0]
    assert first.text == qa_prompt(first.prompt[10:-8]) + first.answer


def test_the_retain_truth_ratio_keeps_to_the_retained_authors(tofu):
    scenario, _ = tofu
    five = scenario.model_copy(update={"data": scenario.data.model_copy(update={"retain_authors": 5})})
    data = unlearning_data(five)
    ev = data.eval_data(None, five.eval, None)
    retained = {doc.prompt.removeprefix("Question: ").removesuffix("\nAnswer:") for doc in data.retain_docs}
    assert len(retained) <= 100 and ev.truth_retain
    assert all(it.question in retained for it in ev.truth_retain)


def test_retained_authors_without_perturbed_items_are_refused(tofu, tmp_path):
    import shutil

    scenario, _ = tofu
    for name in ("forget10", "holdout10", "retain_perturbed"):
        shutil.copy(default_tofu_dir() / f"{name}.jsonl", tmp_path / f"{name}.jsonl")
    lines = (default_tofu_dir() / "retain90.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "retain90.jsonl").write_text("".join(lines[-20:] + lines[:-20]), encoding="utf-8")  # last author first
    data = scenario.data.model_copy(update={"tofu_dir": str(tmp_path), "retain_authors": 1})
    with pytest.raises(MemorylabError, match="data.retain_authors: the first 1 retain author"):
        unlearning_data(scenario.model_copy(update={"data": data}))
