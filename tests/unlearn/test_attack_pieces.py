"""The attacks' parts that need no trained model: group-wise RTN quantization, the rephrased and in-context
evaluation data, the recovery formula, and the scenario's checks of `attacks:`."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch

from memorylab.data.templates import QUESTION_TEMPLATES
from memorylab.evaluation import world_eval_data
from memorylab.models.backends.hf import HFLM
from memorylab.runners.unlearning.attacks import recovered
from memorylab.scenario_loader import load_scenario
from memorylab.schema.common import EvalConfig
from memorylab.unlearn.attacks.in_context import InContext
from memorylab.unlearn.attacks.quantize import fake_quantize, quantize_model
from memorylab.unlearn.attacks.rephrasings import rephrased_world_eval_data, unseen_passage

UNLEARN = Path(__file__).parents[2] / "scenarios" / "unlearn.yaml"


def test_fake_quantize_matches_worked_example():
    # One row, one group of 4: min -1, max 2, 2 bits -> 3 steps of 1.0, zero point round(1/1) = 1; levels
    # -1, 0, 1, 2. 0.4 -> 0, 0.6 -> 1, 1.49 -> 1, 2 -> 2, -1 -> -1.
    w = torch.tensor([[-1.0, 0.4, 0.6, 2.0], [0.0, 0.0, 0.0, 3.0]])
    q = fake_quantize(w, bits=2, group_size=4)
    assert q[0].tolist() == [-1.0, 0.0, 1.0, 2.0]
    assert q[1].tolist() == [0.0, 0.0, 0.0, 3.0]


def test_fake_quantize_groups_levels_and_error():
    torch.manual_seed(0)
    w = torch.randn(8, 70)
    for bits in (4, 8):
        q = fake_quantize(w, bits=bits, group_size=32)  # groups of 32, 32 and 6 per row
        for start, stop in ((0, 32), (32, 64), (64, 70)):
            group, original = q[:, start:stop], w[:, start:stop]
            scale = (original.amax(1) - original.amin(1)) / (2 ** bits - 1)
            assert all(len(torch.unique(row)) <= 2 ** bits for row in group)
            assert ((group - original).abs() <= scale[:, None] + 1e-6).all()  # half a step, plus the zero's
    assert (fake_quantize(w, 8, 32) - w).abs().max() < (fake_quantize(w, 4, 32) - w).abs().max()
    # Rounding what is already on the grid changes nothing.
    q4 = fake_quantize(w, 4, 32)
    assert torch.allclose(fake_quantize(q4, 4, 32), q4, atol=1e-6)


def test_quantize_model_leaves_head_and_embeddings(tiny_model_dir):
    lm = HFLM.load(tiny_model_dir, device="cpu")
    before = {n: p.clone() for n, p in lm.model.named_parameters()}
    count = quantize_model(lm.model, bits=4, group_size=16)
    changed = {n for n, p in lm.model.named_parameters() if not torch.equal(p, before[n])}
    assert count > 0 and changed
    assert not any("embed" in n or "lm_head" in n or "norm" in n for n in changed)


def test_rephrased_world_data_uses_unseen_wordings(tiny_world, tiny_model_dir):
    lm = HFLM.load(tiny_model_dir, device="cpu")
    cfg = EvalConfig()
    plain = world_eval_data(tiny_world, lm, cfg)
    asked = rephrased_world_eval_data(tiny_world, lm, cfg)
    assert [q.answer for q in asked.qa_forget] == [q.answer for q in plain.qa_forget]
    used = set(QUESTION_TEMPLATES.values())
    assert all(q.question not in {t.format(name=tiny_world.person(q.person_id).name) for t in used}
               for q in asked.qa_forget)
    corpus = " ".join(tiny_world.training_documents(["forget", "retain"]))
    for person in tiny_world.people_in("forget"):
        passage = unseen_passage(tiny_world, person.id)
        sentences = re.split(r"(?<=\.) ", passage)
        assert len(sentences) == 9  # paraphrases 3 and a biography leave a wording of every fact unseen
        assert not [s for s in sentences if s in corpus]
    assert asked.qa_retain == plain.qa_retain  # only the forget side is reworded


def test_in_context_rewrite_shows_other_people_and_leads():
    from memorylab.data import QA
    from memorylab.evaluation import EvalData

    qa = [QA(f"Q{p}{a}?", f"A{p}{a}", f"p{p}", f"a{a}") for p in range(3) for a in range(3)]
    data = EvalData("world", [("p0 start", " rest0"), ("p1 start", " rest1"), ("p2 start", " rest2")], qa, [], [],
                    [], [], [], [])
    out = InContext(shots=2).rewrite(data)
    line = "Sure, here is the answer:\n\n"
    assert out.fewshot_pool == qa and out.knowmem_prefix == line
    assert out.verbatim[0] == (line + "p1 start rest1\n\np2 start rest2\n\np0 start", " rest0")
    assert [t for _, t in out.verbatim] == [t for _, t in data.verbatim]
    assert dataclasses.replace(out, verbatim=data.verbatim, fewshot_pool=[], knowmem_prefix="") == data


@pytest.mark.parametrize("after, before, target, asked, expected", [
    (0.5, 0.0, 1.0, None, 0.5), (1.2, 0.0, 1.0, None, 1.0), (-0.1, 0.0, 1.0, None, 0.0),
    (0.9, 0.9, 0.92, None, None),  # nothing forgotten: no share of it can come back
    (None, 0.0, 1.0, None, None), (0.3, 0.2, 0.6, None, 0.25),
    (0.25, 0.2, 1.0, 0.5, 0.375),  # asked otherwise, the target keeps 0.5: 0.25 is half of it, 0.2 kept before
    (0.0, 0.2, 1.0, 0.01, None)])  # the attack draws nothing out of the target itself
def test_recovered(after, before, target, asked, expected):
    assert recovered(after, before, target, asked) == (pytest.approx(expected) if expected is not None else None)


def test_scenario_checks_attacks():
    scenario = load_scenario(UNLEARN, ["attacks=[{attack: quantize, bits: [4, 8]}, {attack: relearn, units: 2}]"])
    assert [k for a in scenario.attacks for k in a.keys()] == ["quantize_4bit", "quantize_8bit", "relearn"]
    with pytest.raises(Exception, match="measured twice"):
        load_scenario(UNLEARN, ["attacks=[{attack: rephrase}, {attack: rephrase}]"])
    with pytest.raises(Exception, match="at least one must be left"):
        load_scenario(UNLEARN, ["attacks=[{attack: relearn, units: 6}]"])
    with pytest.raises(Exception, match="world.paraphrases must be below 5"):
        load_scenario(UNLEARN, ["world.paraphrases=5", "attacks=[{attack: rephrase}]"])
    with pytest.raises(Exception, match="unknown attack|does not match any of the expected tags|union_tag_invalid"):
        load_scenario(UNLEARN, ["attacks=[{attack: jailbreak}]"])


def test_rephrased_tofu_data_asks_the_paraphrased_questions():
    from memorylab.data.tofu import TofuData, TofuItem
    from memorylab.evaluation import tofu_eval_data
    from memorylab.unlearn.attacks.rephrasings import rephrased_tofu_eval_data

    items = [TofuItem("Who wrote X?", "Ann wrote X.", paraphrased_question="X was written by whom?"),
             TofuItem("Where was Ann born?", "In Rome.")]  # no paraphrase: asked as it is
    tofu = TofuData(forget=items, retain=[TofuItem("Q?", "A.")], holdout=[TofuItem("H?", "B.")],
                    retain_perturbed=[])
    data = tofu_eval_data(tofu, EvalConfig())
    asked = rephrased_tofu_eval_data(data, items)
    assert [q.question for q in asked.qa_forget] == ["X was written by whom?", "Where was Ann born?"]
    assert [q.answer for q in asked.qa_forget] == [q.answer for q in data.qa_forget]
    assert asked.verbatim[0] == ("Question: X was written by whom?\nAnswer:", data.verbatim[0][1])
    with pytest.raises(ValueError, match="2 forget questions"):
        rephrased_tofu_eval_data(data, items[:1])


def test_in_context_passages_stop_where_the_context_ends():
    from memorylab.evaluation import EvalData

    class Counting:  # one token per character
        max_length = 62

        def count_tokens(self, texts):
            return [len(t) for t in texts]

    pairs = [(f"p{i} start", f" rest{i}") for i in range(4)]
    data = EvalData("world", pairs, [], [], [], [], [], [], [])
    out = InContext(shots=3, prefix="").rewrite(data, Counting(), new_tokens=20)
    for prompt, _ in out.verbatim:
        assert len(prompt) + 1 + 20 <= 62 and prompt.count("rest") == 2  # the third passage would not fit
