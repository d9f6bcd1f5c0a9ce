"""Measure what one model memorized: the metric keys of every memorization and unlearning report.

An evaluation is data (an `EvalData`: which texts, questions and canaries) plus one function (`evaluate`)
that measures any LM-protocol object on it (a local backend, a RemoteLM over a ModelActor, an unlearned or
ULD-combined model), so every runner measures every model the same way. The data comes from the synthetic
world (`world_eval_data`, optionally about a subset of the forget people) or from TOFU (`tofu_eval_data`).
PrivLeak and TOFU forget quality compare a model with the retrain model, so the caller adds them from the
figures of several evaluations (`add_privleak`, `add_forget_quality`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection, Optional, Sequence

import numpy as np

from memorylab.data import QA, Canary, World
from memorylab.data.prompts import fewshot_prompt, qa_document, qa_prompt, qa_text
from memorylab.data.selection import strided
from memorylab.data.tofu import TofuData, TofuItem
from memorylab.metrics import (
    exposure,
    forget_quality,
    knowmem,
    loss_score,
    mia_auc,
    min_k_plus_plus_score,
    min_k_score,
    perplexity,
    privleak,
    split_prefix,
    truth_ratio,
    truth_ratio_score,
    verbmem,
    zlib_score,
)
from memorylab.metrics.catalog import in_order, parts_for
from memorylab.models.documents import MarkedText, mark
from memorylab.models.protocol import LM, GenerationParams
from memorylab.progress import progress_bar
from memorylab.schema.common import EvalConfig

TOFU_AUTHOR_QUESTIONS = 20  # TOFU files list 20 questions per author, author after author
TOFU_RETAIN_EVAL = 400  # retain questions asked of each model: an even stride through the retain split


def membership_texts(world: World, split: str) -> list[str]:
    """Texts whose likelihood the MIA scores compare: every biography and fact text of the split's people."""
    return world.biographies(split) + world.fact_texts(split)


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    samples: dict[str, Any]  # a few generations per metric, for the report's tables
    raw: dict[str, Any] = field(default_factory=dict)  # per-item figures other models are compared on


@dataclass(frozen=True)
class EvalData:
    """Everything one evaluation asks of a model; `evaluate` measures any model on it."""

    name: str  # "world" or "tofu"
    verbatim: list[tuple[str, str]]  # VerbMem (prompt, true continuation) pairs of the forget set
    qa_forget: list[QA]
    qa_retain: list[QA]
    fewshot_pool: list[QA]  # where KnowMem's few-shot examples come from
    members: list[str]  # MIA texts: forget (members) ...
    nonmembers: list[str]  # ... vs holdout (never trained on)
    holdout_texts: list[str]  # perplexity
    canaries: list[Canary]  # may be empty
    truth_forget: Sequence[TofuItem] = ()  # TOFU items with paraphrased and perturbed answers; empty for the world
    truth_retain: Sequence[TofuItem] = ()
    # Where a VerbMem generation is cut: a TOFU answer is one line, a biography prefix runs on.
    verbatim_stop: tuple[str, ...] = ()
    # What every KnowMem prompt starts with (an in-context attack's jailbreak-style line).
    knowmem_prefix: str = ""
    # The forget texts with their facts' values marked (MarkedText): the text around them is what span-level
    # unlearning must keep (ppl_forget_context). Empty for TOFU, which marks nothing.
    forget_contexts: Sequence[MarkedText] = ()


# -- the data ---------------------------------------------------------------------------------------------

def verbatim_pairs(lm: LM, texts: Sequence[str], cfg: EvalConfig) -> list[tuple[str, str]]:
    """MUSE VerbMem pairs: each text's first tokens and the true continuation, cut to the generated length."""
    prompts, truths = [], []
    for ids in lm.encode(list(texts)):
        prefix, rest = split_prefix(ids, cfg.verbmem_prefix_tokens)
        prompts.append(prefix)
        truths.append(rest[: cfg.verbmem_max_new_tokens])
    return list(zip(lm.decode(prompts), lm.decode(truths)))


def world_eval_data(world: World, lm: LM, cfg: EvalConfig, forget_people: Sequence[str] | None = None) -> EvalData:
    """The world's evaluation; `forget_people` (ids of forget-split people) restricts every forget-side text,
    question and canary to those people (a deletion request that names only some of them). Retain questions
    and the holdout non-members are always the whole splits. `lm` tokenizes the VerbMem prefixes."""
    people = world.people_in("forget")
    if forget_people is not None:
        if isinstance(forget_people, str):
            forget_people = [forget_people]  # one id, not its characters
        wanted = set(forget_people)
        for pid in sorted(wanted):
            if world.split_of(pid) != "forget":  # split_of raises on an unknown id
                raise ValueError(f"person {pid!r} is in the {world.split_of(pid)} split, not forget; only forget "
                                 "people can be asked to be forgotten")
        if not wanted:
            raise ValueError("forget_people is empty; pass None for the whole forget split")
        people = [p for p in people if p.id in wanted]  # world order, whatever the order asked
    ids = {p.id for p in people}
    members = [world.biography(p.id) for p in people] + [f.text for f in world.facts("forget") if f.person_id in ids]
    holdout = membership_texts(world, "holdout")
    retain_qa = world.qa("retain")
    return EvalData(
        name="world",
        verbatim=verbatim_pairs(lm, [world.biography(p.id) for p in people], cfg),
        qa_forget=[qa for qa in world.qa("forget") if qa.person_id in ids],
        qa_retain=retain_qa,
        fewshot_pool=retain_qa,
        members=members,
        nonmembers=holdout,
        holdout_texts=holdout,
        canaries=[c for c in world.canaries if c.person_id in ids],  # = world.canaries_of each, in world order
        forget_contexts=[mark(world.biography(p.id), list(p.attributes.values())) for p in people],
    )


def tofu_qa(items: Sequence[TofuItem], first: int = 0, keep: Sequence[int] | None = None) -> list[QA]:
    """TOFU items as QA pairs: the author is the item's row in `full` (`first` + index) // 20, and the
    "attribute" its question number within the author, so few-shot examples are other authors' questions."""
    rows = range(len(items)) if keep is None else keep
    return [QA(items[i].question, items[i].answer, f"author{(first + i) // TOFU_AUTHOR_QUESTIONS}",
               f"q{(first + i) % TOFU_AUTHOR_QUESTIONS}") for i in rows]


def tofu_eval_data(tofu: TofuData, cfg: EvalConfig, max_retain: int = TOFU_RETAIN_EVAL,
                   lm: Optional[LM] = None) -> EvalData:
    """TOFU's evaluation: forget/retain QA, forget answers for VerbMem, forget vs holdout QA documents for
    MIA, and the perturbed items of the truth ratio. Retain QA is an even stride of at most `max_retain`
    items so that evaluating many models stays fast. `lm` tokenizes the VerbMem truths to cut them to
    `cfg.verbmem_max_new_tokens`, the length generated, as verbatim_pairs does for the world (a whole answer
    longer than a generation could never be matched); None keeps whole answers."""
    # TOFU's forgetNN is the last NN% of `full` and retainMM the first MM%: forget rows follow retain ones, so
    # numbering forget after retain gives every author the index it has in `full` and no two splits share one.
    qa_forget = tofu_qa(tofu.forget, first=len(tofu.retain))
    qa_retain = tofu_qa(tofu.retain, keep=strided(len(tofu.retain), max_retain))
    members = [qa_document(qa) for qa in qa_forget]
    nonmembers = [qa_text(it.question, it.answer) for it in tofu.holdout]
    truths = [f" {qa.answer}" for qa in qa_forget]
    if lm is not None:
        truths = lm.decode([ids[: cfg.verbmem_max_new_tokens] for ids in lm.encode(truths)])
    return EvalData(
        name="tofu",
        verbatim=[(qa_prompt(qa.question), truth) for qa, truth in zip(qa_forget, truths)],
        qa_forget=qa_forget,
        qa_retain=qa_retain,
        fewshot_pool=qa_retain,
        members=members,
        nonmembers=nonmembers,
        holdout_texts=nonmembers,
        canaries=[],
        truth_forget=list(tofu.forget),
        truth_retain=list(tofu.retain_perturbed),
        verbatim_stop=("\n",),
    )


# -- the measurements -------------------------------------------------------------------------------------

def verbmem_pairs(lm: LM, pairs: Sequence[tuple[str, str]], cfg: EvalConfig,
                  stop: tuple[str, ...] = ()) -> tuple[float, list[dict[str, str]]]:
    """MUSE VerbMem: ROUGE-L F1 of each prompt's greedy continuation vs its true continuation."""
    prompts, truths = [p for p, _ in pairs], [t for _, t in pairs]
    outputs = lm.generate(prompts, GenerationParams(max_new_tokens=cfg.verbmem_max_new_tokens, stop=stop,
                                                    speculative=_speculative(cfg)))
    samples = [{"prompt": p, "truth": t, "output": o} for p, t, o in zip(prompts, truths, outputs)]
    return verbmem(outputs, truths), samples


def _speculative(cfg: EvalConfig) -> Any:
    """eval.speculative as generation parameters (None: plain decoding); greedy outputs are the same either way."""
    return None if cfg.speculative is None else cfg.speculative.params()


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


def knowmem_questions(lm: LM, questions: Sequence[QA], pool: Sequence[QA],
                      cfg: EvalConfig, prefix: str = "") -> tuple[float, list[dict[str, str]]]:
    """MUSE KnowMem: ROUGE-L F1 of greedy answers to few-shot prompted questions (each prompt after `prefix`)."""
    prompts = [prefix + fewshot_prompt(fewshot_shots(pool, q, cfg.knowmem_shots), q.question) for q in questions]
    # " " after "Answer:" belongs to the answer's first token in training, so the prompt ends at the colon.
    outputs = lm.generate(prompts, GenerationParams(max_new_tokens=cfg.knowmem_max_new_tokens, stop=("\n",),
                                                    speculative=_speculative(cfg)))
    answers = [q.answer for q in questions]
    samples = [{"question": q.question, "answer": q.answer, "output": o.strip()} for q, o in zip(questions, outputs)]
    return knowmem(outputs, answers), samples


def context_perplexity(lm: LM, texts: Sequence[MarkedText]) -> float:
    """Perplexity of the texts' unmarked parts, each part scored after all of its text before it (the marked
    values included), every token weighing the same."""
    pairs = []
    for t in texts:
        cut = 0
        for start, end in [*t.spans, (len(t.text), len(t.text))]:
            if start > cut:
                pairs.append((t.text[:cut], t.text[cut:start]))
            cut = max(cut, end)
    tokens = sum(len(ids) for ids in lm.encode([part for _, part in pairs]))
    return float(np.exp(-float(np.sum(lm.loglikelihood(pairs))) / max(tokens, 1)))


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


def canary_exposures(lm: LM, canaries: Sequence[Canary]) -> list[float]:
    """Exposure of each canary: the rank of its secret's log-perplexity among never-inserted candidates."""
    result = []
    for canary in canaries:
        secrets = [canary.secret, *canary.candidates]
        # The secret is scored as a continuation of its prefix: what an extraction attack would query.
        log_ppl = [-ll for ll in lm.loglikelihood([(canary.prefix, " " + s) for s in secrets])]
        result.append(exposure(log_ppl[0], log_ppl[1:]))
    return result


def truth_ratio_sets(lm: LM, *sets: Sequence[TofuItem]) -> list[np.ndarray]:
    """TOFU truth ratios R of each item of each set, from length-normalised log-probs (mean per token) of its
    paraphrased and perturbed answers given the question. One encode and one loglikelihood call for all."""
    pairs: list[tuple[str, str]] = []
    spans: list[list[tuple[int, int]]] = []  # per set, per item: (index of the paraphrased answer, k)
    for items in sets:
        spans.append([])
        for it in items:
            if it.paraphrased_answer is None or not it.perturbed_answers:
                raise ValueError(f"TOFU item {it.question!r} has no paraphrased or no perturbed answers; the "
                                 "truth ratio needs both (forget10 / retain_perturbed items have them)")
            context = qa_prompt(it.question)
            spans[-1].append((len(pairs), len(it.perturbed_answers)))
            pairs += [(context, f" {a}") for a in (it.paraphrased_answer, *it.perturbed_answers)]
    if not pairs:
        return [np.zeros(0) for _ in sets]
    lengths = np.array([max(len(ids), 1) for ids in lm.encode([c for _, c in pairs])], dtype=np.float64)
    means = np.asarray(lm.loglikelihood(pairs), dtype=np.float64) / lengths
    return [np.array([truth_ratio(means[i], means[i + 1: i + 1 + k]) for i, k in s]) for s in spans]


def evaluate(lm: LM, data: EvalData, cfg: EvalConfig, desc: str = "evaluate", show_progress: bool = True,
             only: Optional[Collection[str]] = None) -> Evaluation:
    """Every metric of `data` on one model. Truth-ratio keys (and raw["truth_ratios_forget"]) only with TOFU.
    `only`: figure names; the parts of the evaluation that give none of them are skipped, and their metrics
    are missing (intermediate measurements need only what an objective reads)."""
    wanted = parts_for(only)  # figures computed from others count for their sources (PrivLeak: the MIA)
    separate_ppl = data.holdout_texts is not data.nonmembers and list(data.holdout_texts) != list(data.nonmembers)
    mia_needed = "mia" in wanted or ("ppl" in wanted and not separate_ppl)  # perplexity reuses the holdout scores
    truth = (bool(data.truth_forget) or bool(data.truth_retain)) and "truth" in wanted
    canaries = bool(data.canaries) and "canaries" in wanted
    contexts = bool(data.forget_contexts) and "context" in wanted
    steps = (contexts + ("verbmem" in wanted) + ("knowmem_forget" in wanted) + ("knowmem_retain" in wanted)
             + 2 * mia_needed + (separate_ppl and "ppl" in wanted) + canaries + truth)
    metrics: dict[str, float] = {}
    samples: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    with progress_bar(total=steps, desc=desc, enabled=show_progress) as bar:
        if "verbmem" in wanted:
            metrics["verbmem_forget"], verb_samples = verbmem_pairs(lm, data.verbatim, cfg, data.verbatim_stop)
            samples["verbmem_forget"] = verb_samples[:3]
            bar.update()
        for split, qa in (("forget", data.qa_forget), ("retain", data.qa_retain)):
            if f"knowmem_{split}" in wanted:
                metrics[f"knowmem_{split}"], qa_samples = knowmem_questions(lm, qa, data.fewshot_pool, cfg,
                                                                               data.knowmem_prefix)
                samples[f"knowmem_{split}"] = qa_samples[:5]
                bar.update()
        if mia_needed:
            members = mia_scores(lm, data.members, cfg.mia_min_k)
            bar.update()
            holdout = mia_scores(lm, data.nonmembers, cfg.mia_min_k)
            bar.update()
            if "mia" in wanted:
                # Min-K% prob is the MIA behind MUSE's PrivLeak; the other attacks are reported beside it.
                metrics.update({
                    "mia_auc_forget_holdout": mia_auc(members["min_k"], holdout["min_k"]),
                    "mia_auc_min_k_pp": mia_auc(members["min_k_pp"], holdout["min_k_pp"]),
                    "mia_auc_loss": mia_auc(members["loss"], holdout["loss"]),
                    "mia_auc_zlib": mia_auc(members["zlib"], holdout["zlib"]),
                })
        if "ppl" in wanted:
            holdout_logprobs = lm.token_logprobs(data.holdout_texts) if separate_ppl else holdout["logprobs"]
            if separate_ppl:
                bar.update()
            metrics["ppl_holdout"] = perplexity(holdout_logprobs)
        if contexts:
            metrics["ppl_forget_context"] = context_perplexity(lm, data.forget_contexts)
            bar.update()
        if "canaries" in wanted:
            exposures = canary_exposures(lm, data.canaries) if canaries else []
            if canaries:
                bar.update()
            metrics["canary_exposure_mean"] = float(np.mean(exposures)) if exposures else float("nan")
            samples["canary_exposures"] = exposures
        ratios_forget, ratios_retain = truth_ratio_sets(lm, data.truth_forget, data.truth_retain) if truth else ([], [])
        if truth:
            bar.update()
    if len(ratios_forget):
        metrics["truth_ratio_forget"] = truth_ratio_score(ratios_forget, "forget")
        raw["truth_ratios_forget"] = [float(r) for r in ratios_forget]
    if len(ratios_retain):
        metrics["truth_ratio_retain"] = truth_ratio_score(ratios_retain, "retain")
        raw["truth_ratios_retain"] = [float(r) for r in ratios_retain]
    return Evaluation(metrics=in_order(metrics), samples=samples, raw=raw)


def evaluate_memorization(lm: LM, world: World, cfg: EvalConfig, desc: str = "evaluate",
                          show_progress: bool = True) -> Evaluation:
    """The world's whole forget split: what the memorization runner reports."""
    return evaluate(lm, world_eval_data(world, lm, cfg), cfg, desc, show_progress)


# -- figures that compare a model with the retrain model ---------------------------------------------------

def add_privleak(models: dict[str, dict[str, float]], reference: str = "retrain") -> None:
    """PrivLeak of every model against the reference model's MIA AUC (the reference itself gets 0)."""
    auc_ref = models[reference]["mia_auc_forget_holdout"]
    for figures in models.values():
        figures["privleak"] = privleak(figures["mia_auc_forget_holdout"], auc_ref)


def add_forget_quality(models: dict[str, dict], raws: dict[str, dict], reference: str = "retrain") -> None:
    """TOFU forget quality (KS-test p-value of the forget truth ratios vs the reference's) of every model
    whose raw figures have them; nothing when the reference has none (a world evaluation)."""
    ref = raws.get(reference, {}).get("truth_ratios_forget")
    if ref is None:
        return
    for name, figures in models.items():
        ratios = raws.get(name, {}).get("truth_ratios_forget")
        if ratios is not None:
            figures["forget_quality"] = forget_quality(ratios, ref)


def compare_to_retrain(models: dict[str, dict[str, float]], raws: dict[str, dict]) -> None:
    """The figures measured against the retrain model, added to every model's: PrivLeak, and TOFU's forget
    quality where the raw figures hold truth ratios. `models` must hold 'retrain'. (A partial measurement
    without the MIA gets no PrivLeak.)"""
    if all("mia_auc_forget_holdout" in figures for figures in models.values()):
        add_privleak(models)
    if any("truth_ratios_forget" in raws.get(n, {}) for n in models):
        add_forget_quality(models, raws)
