"""TOFU evaluation: tofu_eval_data on the real files, truth-ratio wiring on a scripted fake, forget quality."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pytest

from memorylab.data.selection import strided
from memorylab.data.tofu import TofuData, TofuItem, load_tofu, qa_documents
from memorylab.errors import MemorylabError
from memorylab.evaluation import (
    TOFU_RETAIN_EVAL,
    add_forget_quality,
    evaluate,
    tofu_eval_data,
    truth_ratio_sets,
)
from memorylab.metrics import forget_quality
from memorylab.models.protocol import LM, GenerationParams
from memorylab.schema.common import EvalConfig

CFG = EvalConfig(verbmem_max_new_tokens=200, knowmem_shots=2, knowmem_max_new_tokens=200)
# Per-token log-probs the fake gives each kind of answer: it prefers the (paraphrased) truth on the forget set
# by 1 nat per token and on the retain set by 2, whatever the answers' lengths.
PARA, PERT_FORGET, PERT_RETAIN = -1.0, -2.0, -3.0


def _item(tag: str, i: int, k: int = 3) -> TofuItem:
    # Answers of different lengths, so only length-normalised log-probs give the same ratio for every item.
    return TofuItem(f"{tag} question {i}?", f"{tag} answer {i}", paraphrased_answer=f"{tag} para {i}" + "!" * i,
                    perturbed_answers=tuple(f"{tag} wrong {i}.{j}" + "?" * (3 * j) for j in range(k)))


def small_tofu() -> TofuData:
    forget = [_item("forget", i) for i in range(6)]
    retain = [TofuItem(f"retain question {i}?", f"retain answer {i}") for i in range(45)]
    holdout = [TofuItem(f"holdout question {i}?", f"holdout answer {i}") for i in range(5)]
    retain_perturbed = [_item("retain", i, k=2) for i in range(4)]
    return TofuData(forget=forget, retain=retain, holdout=holdout, retain_perturbed=retain_perturbed)


class FakeTofuLM:
    """One token per character; answers every question right; forget documents likelier than holdout ones."""

    def __init__(self, tofu: TofuData) -> None:
        self.answers = {it.question: it.answer for s in (tofu.forget, tofu.retain, tofu.holdout) for it in s}
        self.members = set(qa_documents(tofu.forget))
        self.rate = {f" {it.paraphrased_answer}": PARA for it in tofu.forget + tofu.retain_perturbed}
        self.rate |= {f" {a}": PERT_FORGET for it in tofu.forget for a in it.perturbed_answers}
        self.rate |= {f" {a}": PERT_RETAIN for it in tofu.retain_perturbed for a in it.perturbed_answers}
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [[ord(c) for c in t] for t in texts]

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return ["".join(chr(i) for i in row) for row in ids]

    def token_logprobs(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [np.full(len(t), -1.0 if t in self.members else -3.0) for t in texts]

    def token_logprob_moments(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return [(lp, np.full(lp.size, -2.0), np.full(lp.size, 0.25)) for lp in self.token_logprobs(texts)]

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        self._count("loglikelihood")
        for context, _ in pairs:
            assert context.startswith("Question: ") and context.endswith("\nAnswer:"), context
        return [self.rate[continuation] * len(continuation) for _, continuation in pairs]  # a sum over tokens

    def next_token_logits(self, input_ids: Any, attention_mask: Any = None, past: Any = None) -> tuple[Any, Any]:
        raise NotImplementedError

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        self._count("generate")
        outputs = []
        for prompt in prompts:
            question = prompt.rsplit("Question: ", 1)[1][: -len("\nAnswer:")]
            text = f" {self.answers[question]}\n\nQuestion: what next?"[: params.max_new_tokens]
            for stop in params.stop:
                text = text.split(stop, 1)[0]
            outputs.append(text)
        return outputs


def test_fake_is_an_lm():
    assert isinstance(FakeTofuLM(small_tofu()), LM)


def test_tofu_wiring_on_a_fake():
    tofu = small_tofu()
    fake = FakeTofuLM(tofu)
    data = tofu_eval_data(tofu, CFG)
    ev = evaluate(fake, data, CFG, show_progress=False)
    m = ev.metrics
    # Per question R = exp(mean perturbed lp - paraphrased lp), with per-token means.
    r_forget, r_retain = math.exp(PERT_FORGET - PARA), math.exp(PERT_RETAIN - PARA)
    assert m["truth_ratio_forget"] == pytest.approx(min(r_forget, 1 / r_forget))  # mean(min(R, 1/R))
    assert m["truth_ratio_retain"] == pytest.approx(1 - r_retain)  # mean(max(0, 1 - R))
    assert ev.raw["truth_ratios_forget"] == pytest.approx([r_forget] * len(tofu.forget))
    assert ev.raw["truth_ratios_retain"] == pytest.approx([r_retain] * len(tofu.retain_perturbed))
    assert fake.calls["loglikelihood"] == 1  # every answer of both sets in one batched call
    assert m["verbmem_forget"] == m["knowmem_forget"] == m["knowmem_retain"] == 1.0
    assert m["mia_auc_forget_holdout"] == m["mia_auc_loss"] == 1.0
    assert math.isnan(m["canary_exposure_mean"])
    assert m["ppl_holdout"] == pytest.approx(math.exp(3.0))
    assert ev.samples["verbmem_forget"][0] == {"prompt": f"Question: {tofu.forget[0].question}\nAnswer:",
                                               "truth": f" {tofu.forget[0].answer}",
                                               "output": f" {tofu.forget[0].answer}"}


def test_tofu_data_from_small_splits():
    tofu = small_tofu()
    data = tofu_eval_data(tofu, CFG, max_retain=10)
    assert data.name == "tofu" and data.canaries == []
    assert [qa.question for qa in data.qa_retain] == [tofu.retain[i].question for i in strided(45, 10)]
    assert data.fewshot_pool == data.qa_retain
    # Forget rows come after the retain rows in `full`: 45 retain rows -> forget rows 45.. = author 2, q5...
    assert [(qa.person_id, qa.attribute) for qa in data.qa_forget[:2]] == [("author2", "q5"), ("author2", "q6")]
    assert data.qa_retain[1].person_id == "author0" and data.qa_retain[-1].person_id == "author2"
    assert data.members == qa_documents(tofu.forget)
    assert data.nonmembers == data.holdout_texts == qa_documents(tofu.holdout)
    assert data.truth_forget == tofu.forget and data.truth_retain == tofu.retain_perturbed


def test_verbmem_truths_are_cut_to_the_generated_length():
    tofu = small_tofu()
    fake = FakeTofuLM(tofu)  # one token per character
    cfg = EvalConfig(verbmem_max_new_tokens=6)
    data = tofu_eval_data(tofu, cfg, lm=fake)
    assert [truth for _, truth in data.verbatim] == [f" {it.answer}"[:6] for it in tofu.forget]
    ev = evaluate(fake, data, cfg, show_progress=False)
    assert ev.metrics["verbmem_forget"] == 1.0  # a perfect copy of what fits in the generation scores 1


def test_truth_ratio_needs_perturbed_items():
    fake = FakeTofuLM(small_tofu())
    with pytest.raises(ValueError, match="paraphrased"):
        truth_ratio_sets(fake, [TofuItem("q?", "a")])
    assert [r.size for r in truth_ratio_sets(fake, [], [])] == [0, 0]


# -- forget quality -----------------------------------------------------------------------------------------

def test_add_forget_quality_is_one_for_the_reference():
    rng = np.random.default_rng(0)
    raws = {"retrain": {"truth_ratios_forget": list(rng.uniform(0.5, 1.5, 50))},
            "target": {"truth_ratios_forget": list(rng.uniform(0.05, 0.3, 50))},
            "npo": {"truth_ratios_forget": list(rng.uniform(0.4, 1.4, 50))},
            "no_tofu": {}}
    models = {name: {"verbmem_forget": 0.0} for name in raws}
    add_forget_quality(models, raws)
    assert models["retrain"]["forget_quality"] == 1.0
    assert models["target"]["forget_quality"] < 1e-6  # clearly not forgotten
    assert models["npo"]["forget_quality"] == forget_quality(raws["npo"]["truth_ratios_forget"],
                                                             raws["retrain"]["truth_ratios_forget"])
    assert "forget_quality" not in models["no_tofu"]
    other = {"a": {}, "b": {}}
    add_forget_quality(other, {"a": raws["target"], "b": raws["target"]}, reference="b")
    assert other["a"]["forget_quality"] == other["b"]["forget_quality"] == 1.0


def test_add_forget_quality_does_nothing_without_reference_ratios():
    models = {"retrain": {}, "target": {}}
    add_forget_quality(models, {"retrain": {}, "target": {"truth_ratios_forget": [1.0, 2.0]}})
    assert models == {"retrain": {}, "target": {}}


# -- the real TOFU files ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tofu() -> TofuData:
    try:
        return load_tofu()
    except MemorylabError as exc:
        pytest.skip(f"TOFU data not available: {exc}")


def test_tofu_eval_data_on_the_real_files(tofu):
    data = tofu_eval_data(tofu, EvalConfig())
    n_forget = len(tofu.forget)
    assert n_forget == 400 and len(tofu.retain) == 3600
    assert len(data.verbatim) == len(data.qa_forget) == len(data.members) == len(data.truth_forget) == n_forget
    assert len(data.qa_retain) == len(data.fewshot_pool) == TOFU_RETAIN_EVAL == 400
    assert [qa.question for qa in data.qa_retain] == [it.question for it in tofu.retain[::9]]
    assert len(data.nonmembers) == len(data.holdout_texts) == len(tofu.holdout) == 400
    assert len(data.truth_retain) == len(tofu.retain_perturbed) == 400
    assert data.canaries == []
    # forget10 is authors 180..199 of `full`, 20 questions each; retain authors come before.
    assert {qa.person_id for qa in data.qa_forget} == {f"author{a}" for a in range(180, 200)}
    assert {qa.person_id for qa in data.qa_retain} == {f"author{a}" for a in range(180)}
    assert {qa.attribute for qa in data.qa_forget} == {f"q{i}" for i in range(20)}
    assert not {qa.question for qa in data.qa_forget} & {qa.question for qa in data.qa_retain}
    assert all(it.paraphrased_answer and it.perturbed_answers for it in data.truth_forget + data.truth_retain)
    prompt, truth = data.verbatim[0]
    assert prompt + truth == data.members[0] == f"Question: {tofu.forget[0].question}\nAnswer: {tofu.forget[0].answer}"


def test_real_tiny_model_truth_ratios_are_length_normalised(tofu, tiny_model_dir):
    from memorylab.models.backends.hf import HFLM

    lm = HFLM.load(tiny_model_dir, device="cpu")
    items = tofu.forget[:2]
    (ratios,) = truth_ratio_sets(lm, items)
    assert ratios.shape == (2,) and np.all(np.isfinite(ratios)) and np.all(ratios > 0)
    for it, r in zip(items, ratios):
        context = f"Question: {it.question}\nAnswer:"
        answers = [f" {a}" for a in (it.paraphrased_answer, *it.perturbed_answers)]
        sums = lm.loglikelihood([(context, a) for a in answers])
        means = [ll / len(ids) for ll, ids in zip(sums, lm.encode(answers))]
        assert r == pytest.approx(math.exp(np.mean(means[1:]) - means[0]), rel=1e-9)
