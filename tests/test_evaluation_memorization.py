"""evaluate_memorization, world_eval_data and their parts: ranges on a real tiny model, exact wiring on a
scripted fake LM."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pytest

from memorylab.data import World
from memorylab.evaluation import (
    Evaluation,
    add_privleak,
    evaluate,
    evaluate_memorization,
    fewshot_shots,
    membership_texts,
    world_eval_data,
)
from memorylab.models.backends.hf import HFLM
from memorylab.models.protocol import LM, GenerationParams
from memorylab.schema.common import EvalConfig, WorldConfig

KEYS = {"verbmem_forget", "knowmem_forget", "knowmem_retain", "mia_auc_forget_holdout", "mia_auc_min_k_pp",
        "mia_auc_loss", "mia_auc_zlib", "canary_exposure_mean", "ppl_holdout", "ppl_forget_context"}
# Short generations: ranges and wiring do not need long ones, and 2 cores do not have the time.
FAST = EvalConfig(verbmem_prefix_tokens=12, verbmem_max_new_tokens=12, knowmem_shots=2, knowmem_max_new_tokens=6)
MAX_EXPOSURE = math.log2(21)  # 20 candidates + the secret
WORLD3 = WorldConfig(num_people=8, forget=3, holdout=2, canaries=4, canary_candidates=20)


class FakeLM:
    """A scripted LM over one world: one token per character, so decode(encode(t)) == t and every text's
    position is known. `quality` says how well it "remembers":
      perfect  - greedy continuations and answers are the truth, the real secret is the likeliest,
                 forget texts are likelier than holdout texts;
      worst    - it writes nothing useful, ranks the secret last and prefers the holdout texts;
      flat     - every candidate secret and every text is equally likely (ties)."""

    def __init__(self, world: World, quality: str = "perfect") -> None:
        self.world, self.quality = world, quality
        self.members = set(membership_texts(world, "forget"))
        self.secrets = {c.prefix: c.secret for c in world.canaries}
        self.answers = {qa.question: qa.answer for split in ("forget", "retain", "holdout") for qa in world.qa(split)}
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        self._count("encode")
        return [[ord(c) for c in t] for t in texts]

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return ["".join(chr(i) for i in row) for row in ids]

    def _logprob(self, text: str) -> float:
        if self.quality == "flat":
            return -2.0
        member = text in self.members
        return -1.0 if member == (self.quality == "perfect") else -3.0

    def token_logprobs(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [np.full(len(t), self._logprob(t)) for t in texts]

    def token_logprob_moments(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        self._count("token_logprob_moments")
        return [(lp, np.full(lp.size, -2.0), np.full(lp.size, 0.25)) for lp in self.token_logprobs(texts)]

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        self._count("loglikelihood")
        out = []
        for context, continuation in pairs:
            if context not in self.secrets:  # a part of a forget text (ppl_forget_context): -1 a token if remembered
                member = any(text.startswith(context + continuation) for text in self.members)
                out.append((-1.0 if member == (self.quality == "perfect") else -3.0) * len(continuation))
                continue
            secret = self.secrets[context]
            if self.quality == "flat":
                out.append(-10.0)
            elif (continuation == " " + secret) == (self.quality == "perfect"):
                out.append(-1.0)
            else:
                out.append(-20.0 - len(continuation) / 100)  # distinct, all below the chosen one
        return out

    def next_token_logits(self, input_ids: Any, attention_mask: Any = None, past: Any = None) -> tuple[Any, Any]:
        raise NotImplementedError("evaluation never steps a model token by token")

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        self._count("generate")
        assert params.greedy, "every metric decodes greedily"
        outputs = []
        for prompt in prompts:
            if prompt.endswith("\nAnswer:"):  # a few-shot KnowMem question
                question = prompt.rsplit("Question: ", 1)[1][: -len("\nAnswer:")]
                answer = self.answers[question] if self.quality == "perfect" else "zzz"
                text = f" {answer}\n\nQuestion: what next?"  # models run on into the next shot
            else:  # a VerbMem prefix of a forget biography
                bios = [b for b in self.world.biographies("forget") if b.startswith(prompt)]
                assert len(bios) == 1, f"prompt {prompt!r} is not the prefix of one forget biography"
                text = bios[0][len(prompt):] if self.quality == "perfect" else "zzz " * 20
            text = text[: params.max_new_tokens]  # one token per character
            for stop in params.stop:
                text = text.split(stop, 1)[0]
            outputs.append(text)
        return outputs


# -- few-shot prompts ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [0, 1, 3, 5])
def test_fewshot_shots_never_show_the_asked_person_or_attribute(tiny_world, k):
    pool = tiny_world.qa("retain")
    by_question = {qa.question: qa for qa in pool}
    assert len(by_question) == len(pool)  # questions identify their QA pair
    for split in ("forget", "retain", "holdout"):
        for question in tiny_world.qa(split):
            shots = fewshot_shots(pool, question, k)
            assert len(shots) == k
            used = [by_question[q] for q, _ in shots]
            assert all(qa.answer == a for qa, (_, a) in zip(used, shots))
            assert all(qa.person_id != question.person_id for qa in used)
            assert all(qa.attribute != question.attribute for qa in used)
            assert len({qa.attribute for qa in used}) == k  # each shot a different attribute


# -- a real (untrained) tiny model ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_evaluation(tiny_model_dir, tiny_world) -> Evaluation:
    lm = HFLM.load(tiny_model_dir, device="cpu")
    return evaluate_memorization(lm, tiny_world, FAST, show_progress=False)


def test_untrained_tiny_model_figures_are_in_range(tiny_evaluation):
    m = tiny_evaluation.metrics
    assert set(m) == KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in m.values()), m
    for key in ("verbmem_forget", "knowmem_forget", "knowmem_retain"):
        assert 0.0 <= m[key] <= 1.0
    for key in KEYS - {"verbmem_forget", "knowmem_forget", "knowmem_retain", "canary_exposure_mean",
                       "ppl_holdout", "ppl_forget_context"}:
        assert 0.0 <= m[key] <= 1.0, key
    assert 0.0 <= m["canary_exposure_mean"] <= MAX_EXPOSURE + 1e-9
    # An untrained model is close to uniform over its 300 tokens: far above 1, not above about |V|.
    assert 1.0 < m["ppl_holdout"] < 3000
    assert 1.0 < m["ppl_forget_context"] < 3000


def test_samples_show_what_was_asked(tiny_evaluation, tiny_world):
    s = tiny_evaluation.samples
    assert len(s["verbmem_forget"]) == min(3, len(tiny_world.biographies("forget")))
    assert all(set(x) == {"prompt", "truth", "output"} for x in s["verbmem_forget"])
    for x in s["verbmem_forget"]:
        bio = next(b for b in tiny_world.biographies("forget") if b.startswith(x["prompt"]))
        assert bio[len(x["prompt"]):].startswith(x["truth"])
    assert [x["answer"] for x in s["knowmem_forget"]] == [q.answer for q in tiny_world.qa("forget")][:5]
    assert len(s["canary_exposures"]) == len(tiny_world.canaries) == 1


def test_add_privleak_is_zero_for_the_reference(tiny_evaluation):
    target = dict(tiny_evaluation.metrics)
    retrain = dict(target, mia_auc_forget_holdout=0.5)
    models = {"target": target, "retrain": retrain}
    add_privleak(models)
    assert retrain["privleak"] == 0.0
    assert target["privleak"] == pytest.approx((0.5 - target["mia_auc_forget_holdout"]) / 0.5 * 100)
    other = {"a": {"mia_auc_forget_holdout": 0.8}, "b": {"mia_auc_forget_holdout": 0.4}}
    add_privleak(other, reference="a")
    assert other["a"]["privleak"] == 0.0 and other["b"]["privleak"] == pytest.approx(200.0)


# -- a scripted fake: the wiring, without training -----------------------------------------------------------

def test_fake_is_an_lm(tiny_world):
    assert isinstance(FakeLM(tiny_world), LM)


def test_perfect_memory_scores_perfectly(tiny_world):
    fake = FakeLM(tiny_world, "perfect")
    # One token per character: room for the longest answer (" University of ...") in 64 "tokens".
    cfg = EvalConfig(knowmem_max_new_tokens=64)
    assert max(len(qa.answer) for s in ("forget", "retain") for qa in tiny_world.qa(s)) < 63
    m = evaluate_memorization(fake, tiny_world, cfg, show_progress=False).metrics
    assert set(m) == KEYS
    assert m["verbmem_forget"] == 1.0
    assert m["knowmem_forget"] == 1.0
    assert m["knowmem_retain"] == 1.0
    assert m["canary_exposure_mean"] == pytest.approx(MAX_EXPOSURE)
    assert m["mia_auc_forget_holdout"] == m["mia_auc_min_k_pp"] == m["mia_auc_loss"] == 1.0
    assert m["ppl_holdout"] == pytest.approx(math.exp(3.0))
    assert fake.calls["generate"] == 3  # one batched call per generation metric, not one per text
    assert fake.calls["loglikelihood"] == len(tiny_world.canaries) + 1  # + one call for the forget texts' parts
    assert m["ppl_forget_context"] == pytest.approx(math.exp(1.0))  # forget texts: -1 a token


def test_no_memory_scores_at_the_bottom(tiny_world):
    m = evaluate_memorization(FakeLM(tiny_world, "worst"), tiny_world, FAST, show_progress=False).metrics
    assert m["verbmem_forget"] == m["knowmem_forget"] == m["knowmem_retain"] == 0.0
    assert m["canary_exposure_mean"] == pytest.approx(0.0)  # the secret ranked last of 21
    assert m["mia_auc_forget_holdout"] == m["mia_auc_min_k_pp"] == m["mia_auc_loss"] == 0.0
    assert m["ppl_holdout"] == pytest.approx(math.e)


def test_ties_rank_in_the_middle(tiny_world):
    m = evaluate_memorization(FakeLM(tiny_world, "flat"), tiny_world, FAST, show_progress=False).metrics
    assert m["canary_exposure_mean"] == pytest.approx(math.log2(21) - math.log2(11))  # average rank 11
    assert m["mia_auc_forget_holdout"] == m["mia_auc_min_k_pp"] == m["mia_auc_loss"] == 0.5


def test_a_world_without_canaries_reports_nan_exposure(tiny_world):
    from memorylab.data import build_world

    world = build_world(tiny_world.config.model_copy(update={"canaries": 0}), seed=0)
    fake = FakeLM(world, "perfect")
    m = evaluate_memorization(fake, world, FAST, show_progress=False).metrics
    assert math.isnan(m["canary_exposure_mean"])
    assert fake.calls["loglikelihood"] == 1  # the forget texts' parts only: no canary is scored
    assert m["verbmem_forget"] == 1.0 and m["mia_auc_loss"] == 1.0


# -- the data object: the whole forget split or a subset of its people ----------------------------------------

@pytest.fixture(scope="module")
def world3():
    """Three forget people, round-robin owners of four canaries (so one person owns two)."""
    from memorylab.data import build_world

    return build_world(WORLD3, seed=1)


def test_evaluate_on_world_data_is_evaluate_memorization(tiny_world):
    fake = FakeLM(tiny_world, "flat")
    data = world_eval_data(tiny_world, fake, FAST)
    assert data.name == "world" and data.truth_forget == () and data.truth_retain == ()
    assert data.members == membership_texts(tiny_world, "forget")
    assert data.nonmembers == data.holdout_texts == membership_texts(tiny_world, "holdout")
    assert data.qa_forget == tiny_world.qa("forget") and data.qa_retain == data.fewshot_pool == tiny_world.qa("retain")
    assert data.canaries == tiny_world.canaries
    a = evaluate(fake, data, FAST, show_progress=False)
    b = evaluate_memorization(fake, tiny_world, FAST, show_progress=False)
    assert a.samples == b.samples and a.raw == b.raw == {}
    assert list(a.metrics) == list(b.metrics) and np.allclose(list(a.metrics.values()), list(b.metrics.values()),
                                                              rtol=0, atol=0, equal_nan=True)


def test_forget_people_restrict_every_forget_side_text(world3):
    forget_ids = [p.id for p in world3.people_in("forget")]
    assert len(forget_ids) == 3 and len(world3.canaries) == 4
    fake = FakeLM(world3, "perfect")
    whole = world_eval_data(world3, fake, FAST)
    for pid in forget_ids:
        data = world_eval_data(world3, fake, FAST, forget_people=[pid])
        bio = world3.biography(pid)
        assert len(data.verbatim) == 1 and bio.startswith(data.verbatim[0][0] + data.verbatim[0][1])
        assert data.qa_forget and all(qa.person_id == pid for qa in data.qa_forget)
        facts = [f.text for f in world3.facts("forget") if f.person_id == pid]
        assert data.members == [bio] + facts
        assert data.canaries == world3.canaries_of(pid) and data.canaries
        # The retain and holdout sides never change with the request.
        assert data.qa_retain == whole.qa_retain and data.fewshot_pool == whole.fewshot_pool
        assert data.nonmembers == whole.nonmembers and data.holdout_texts == whole.holdout_texts
    # Nested requests nest; the order they are asked in does not matter; the whole split is the default.
    one, two = world_eval_data(world3, fake, FAST, forget_ids[:1]), world_eval_data(world3, fake, FAST, forget_ids[:2])
    assert set(one.members) < set(two.members) < set(whole.members)
    assert set(one.verbatim) < set(two.verbatim) and set(one.canaries) <= set(two.canaries)
    assert world_eval_data(world3, fake, FAST, forget_ids[::-1]) == whole
    # Disjoint requests (sequential deletion) share no forget-side text.
    other = world_eval_data(world3, fake, FAST, forget_ids[1:])
    assert not set(one.members) & set(other.members) and not set(one.canaries) & set(other.canaries)
    assert not set(one.qa_forget) & set(other.qa_forget)


def test_a_subset_evaluation_measures_only_its_people(world3):
    pid = world3.people_in("forget")[0].id
    fake = FakeLM(world3, "perfect")
    data = world_eval_data(world3, fake, EvalConfig(knowmem_max_new_tokens=64), forget_people=[pid])
    m = evaluate(fake, data, EvalConfig(knowmem_max_new_tokens=64), show_progress=False).metrics
    assert m["verbmem_forget"] == m["knowmem_forget"] == m["mia_auc_loss"] == 1.0
    assert m["canary_exposure_mean"] == pytest.approx(MAX_EXPOSURE)
    assert fake.calls["loglikelihood"] == len(world3.canaries_of(pid)) + 1  # + the forget texts' parts


def test_forget_people_must_be_forget_people(world3):
    fake = FakeLM(world3)
    with pytest.raises(ValueError, match="retain split"):
        world_eval_data(world3, fake, FAST, [world3.people_in("retain")[0].id])
    with pytest.raises(KeyError):
        world_eval_data(world3, fake, FAST, ["nobody"])
    with pytest.raises(ValueError, match="empty"):
        world_eval_data(world3, fake, FAST, [])
    pid = world3.people_in("forget")[0].id
    assert world_eval_data(world3, fake, FAST, pid) == world_eval_data(world3, fake, FAST, [pid])  # one bare id


@pytest.mark.parametrize("only, measured, skipped", [
    ({"knowmem_forget"}, {"knowmem_forget"}, {"token_logprobs", "token_logprob_moments", "loglikelihood"}),
    ({"privleak"}, {"mia_auc_forget_holdout", "mia_auc_min_k_pp", "mia_auc_loss", "mia_auc_zlib"}, {"generate"}),
    ({"ppl_holdout", "verbmem_forget"}, {"ppl_holdout", "verbmem_forget"}, set()),
    ({"canary_exposure_mean"}, {"canary_exposure_mean"}, {"generate"}),
])
def test_only_measures_what_the_named_figures_need(tiny_world, only, measured, skipped):
    """Intermediate measurements for a sweep scheduler read a few figures: the other parts are not run, and
    the figures that are measured are the full evaluation's."""
    data = world_eval_data(tiny_world, FakeLM(tiny_world, "flat"), FAST)
    full = evaluate(FakeLM(tiny_world, "flat"), data, FAST, show_progress=False)
    fake = FakeLM(tiny_world, "flat")
    part = evaluate(fake, data, FAST, show_progress=False, only=only)
    assert set(part.metrics) == measured
    assert all(part.metrics[k] == full.metrics[k] or (math.isnan(part.metrics[k]) and math.isnan(full.metrics[k]))
               for k in measured)
    assert not skipped & set(fake.calls), fake.calls
