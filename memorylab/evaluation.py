"""Measure what one model memorized of a synthetic world: the metric keys of every memorization report.

Works on any LM-protocol object (a local backend, a RemoteLM over a ModelActor, later an unlearned or
ULD-combined model), so every runner measures every model the same way. PrivLeak needs the retrain model's
AUC too, so it is computed by the caller from the `mia_auc_*` figures returned here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from memorylab.data import QA, World
from memorylab.metrics import (
    exposure,
    fewshot_prompt,
    knowmem,
    loss_score,
    mia_auc,
    min_k_plus_plus_score,
    min_k_score,
    perplexity,
    privleak,
    split_prefix,
    verbmem,
    zlib_score,
)
from memorylab.models.protocol import LM, GenerationParams
from memorylab.progress import progress_bar
from memorylab.scenario import EvalConfig

QA_FORMAT = "Question: {question}\nAnswer: {answer}"  # the format of QA training documents and prompts


def qa_document(qa: QA) -> str:
    """A QA pair as a training document, in exactly the format the few-shot KnowMem prompt uses."""
    return QA_FORMAT.format(question=qa.question, answer=qa.answer)


def membership_texts(world: World, split: str) -> list[str]:
    """Texts whose likelihood the MIA scores compare: every biography and fact text of the split's people."""
    return world.biographies(split) + world.fact_texts(split)


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    samples: dict[str, Any]  # a few generations per metric, for the report's tables


def verbmem_forget(lm: LM, world: World, cfg: EvalConfig) -> tuple[float, list[dict[str, str]]]:
    """MUSE VerbMem: greedy continuation of each forget biography's first tokens vs its true continuation."""
    prompts, truths = [], []
    for ids in lm.encode(world.biographies("forget")):
        prefix, rest = split_prefix(ids, cfg.verbmem_prefix_tokens)
        prompts.append(prefix)
        truths.append(rest[: cfg.verbmem_max_new_tokens])
    prompt_texts, truth_texts = lm.decode(prompts), lm.decode(truths)
    outputs = lm.generate(prompt_texts, GenerationParams(max_new_tokens=cfg.verbmem_max_new_tokens))
    samples = [{"prompt": p, "truth": t, "output": o} for p, t, o in zip(prompt_texts, truth_texts, outputs)]
    return verbmem(outputs, truth_texts), samples


def fewshot_shots(pool: Sequence[QA], question: QA, k: int) -> list[tuple[str, str]]:
    """The first k pool pairs about other people (never the asked person, so no shot gives the answer
    away), each about a different attribute, so the prompt shows the format, not a fact to copy."""
    shots, seen = [], set()
    for qa in pool:
        if len(shots) == k:
            break
        if qa.person_id != question.person_id and qa.attribute not in seen and qa.attribute != question.attribute:
            shots.append((qa.question, qa.answer))
            seen.add(qa.attribute)
    return shots


def knowmem_split(lm: LM, world: World, split: str, cfg: EvalConfig) -> tuple[float, list[dict[str, str]]]:
    """MUSE KnowMem: ROUGE-L F1 of greedy answers to few-shot prompted questions about the split's people."""
    pool = world.qa("retain")
    questions = world.qa(split)
    prompts = [fewshot_prompt(fewshot_shots(pool, q, cfg.knowmem_shots), q.question) for q in questions]
    # " " after "Answer:" belongs to the answer's first token in training, so the prompt ends at the colon.
    outputs = lm.generate(prompts, GenerationParams(max_new_tokens=cfg.knowmem_max_new_tokens, stop=("\n",)))
    answers = [q.answer for q in questions]
    samples = [{"question": q.question, "answer": q.answer, "output": o.strip()} for q, o in zip(questions, outputs)]
    return knowmem(outputs, answers), samples


def mia_scores(lm: LM, texts: Sequence[str], min_k: float) -> dict[str, np.ndarray]:
    """Per-text membership scores (higher = more likely a member) and the token log-probs behind them."""
    moments = lm.token_logprob_moments(texts)
    return {
        "min_k": np.array([min_k_score(lp, min_k) for lp, _, _ in moments]),
        "min_k_pp": np.array([min_k_plus_plus_score(lp, mu, var, min_k) for lp, mu, var in moments]),
        "loss": np.array([loss_score(lp) for lp, _, _ in moments]),
        "zlib": np.array([zlib_score(lp, t) for (lp, _, _), t in zip(moments, texts)]),
        "logprobs": [lp for lp, _, _ in moments],
    }


def canary_exposures(lm: LM, world: World) -> list[float]:
    """Exposure of each canary: the rank of its secret's log-perplexity among never-inserted candidates."""
    result = []
    for canary in world.canaries:
        secrets = [canary.secret, *canary.candidates]
        # The secret is scored as a continuation of its prefix: what an extraction attack would query.
        log_ppl = [-ll for ll in lm.loglikelihood([(canary.prefix, " " + s) for s in secrets])]
        result.append(exposure(log_ppl[0], log_ppl[1:]))
    return result


def evaluate_memorization(lm: LM, world: World, cfg: EvalConfig, desc: str = "evaluate",
                          show_progress: bool = True) -> Evaluation:
    steps = 5 + (1 if world.canaries else 0)
    with progress_bar(total=steps, desc=desc, enabled=show_progress) as bar:
        verb, verb_samples = verbmem_forget(lm, world, cfg)
        bar.update()
        know_forget, forget_samples = knowmem_split(lm, world, "forget", cfg)
        bar.update()
        know_retain, retain_samples = knowmem_split(lm, world, "retain", cfg)
        bar.update()
        members = mia_scores(lm, membership_texts(world, "forget"), cfg.mia_min_k)
        bar.update()
        holdout = mia_scores(lm, membership_texts(world, "holdout"), cfg.mia_min_k)
        bar.update()
        exposures = canary_exposures(lm, world) if world.canaries else []
        if world.canaries:
            bar.update()
    metrics = {
        "verbmem_forget": verb,
        "knowmem_forget": know_forget,
        "knowmem_retain": know_retain,
        # Min-K% prob is the MIA behind MUSE's PrivLeak; the other attacks are reported beside it.
        "mia_auc_forget_holdout": mia_auc(members["min_k"], holdout["min_k"]),
        "mia_auc_min_k_pp": mia_auc(members["min_k_pp"], holdout["min_k_pp"]),
        "mia_auc_loss": mia_auc(members["loss"], holdout["loss"]),
        "mia_auc_zlib": mia_auc(members["zlib"], holdout["zlib"]),
        "canary_exposure_mean": float(np.mean(exposures)) if exposures else float("nan"),
        "ppl_holdout": perplexity(holdout["logprobs"]),
    }
    samples = {"verbmem_forget": verb_samples[:3], "knowmem_forget": forget_samples[:5],
               "knowmem_retain": retain_samples[:5], "canary_exposures": exposures}
    return Evaluation(metrics=metrics, samples=samples)


def add_privleak(models: dict[str, dict[str, float]], reference: str = "retrain") -> None:
    """PrivLeak of every model against the reference model's MIA AUC (the reference itself gets 0)."""
    auc_ref = models[reference]["mia_auc_forget_holdout"]
    for figures in models.values():
        figures["privleak"] = privleak(figures["mia_auc_forget_holdout"], auc_ref)
