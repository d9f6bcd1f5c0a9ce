"""What an unlearning run trains, forgets and measures on: the synthetic world or TOFU, behind one shape.

A forget set is a list of *units* — people of the world, or TOFU authors — so scalability (the first s units,
nested) and sustainability (disjoint chunks, one per request) work the same on both sources.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from memorylab.data import build_world
from memorylab.data.corpus import corpus, tokenizer_texts
from memorylab.data.prompts import qa_document, qa_text
from memorylab.data.tofu import TofuData, TofuItem, load_tofu, qa_documents, qa_examples
from memorylab.errors import MemorylabError
from memorylab.evaluation import EvalData, tofu_eval_data, world_eval_data
from memorylab.models.documents import Document, mark
from memorylab.schema.common import EvalConfig
from memorylab.schema.unlearning import UnlearningScenario
from memorylab.unlearn.attacks.rephrasings import rephrased_tofu_eval_data, rephrased_world_eval_data

TOFU_QA_PER_AUTHOR = 20  # TOFU lists each author's 20 QA pairs one after another


@dataclass
class UnlearningData:
    source: str
    # Documents: plain texts (the world, packed as in pre-training) or Examples (TOFU's QA pairs).
    target_corpus: list[Document]
    retrain_corpus: list[Document]
    tokenizer_texts: list[str]
    retain_docs: list[Document]
    units: list[str]  # the whole forget set, in a fixed order
    forget_docs: Callable[[Sequence[str]], list[Document]]
    # Wrong answers to the forget questions, for a method that `wants_wrong_answers` among its retain docs.
    wrong_answers: Callable[[Sequence[str]], list[Document]]
    eval_data: Callable[[Any, EvalConfig, Optional[Sequence[str]]], EvalData]
    # The same, with the forget facts asked and stated in wordings no model saw (the rephrasing attack).
    rephrased_eval_data: Callable[[Any, EvalConfig, Optional[Sequence[str]]], EvalData]
    summary: dict[str, Any] = field(default_factory=dict)
    # The forget documents with their sensitive spans marked (fact values, canary secrets), for a method with
    # `scope: spans`; None where the data marks nothing (TOFU).
    marked_forget_docs: Optional[Callable[[Sequence[str]], list[Document]]] = None

    def chunks(self, requests: int) -> list[list[str]]:
        """Disjoint forget requests, in order, as even as the units allow."""
        return [list(c) for c in np.array_split(np.array(self.units, dtype=object), requests)]


def world_data(scenario: UnlearningScenario) -> UnlearningData:
    world = build_world(scenario.world, seed=scenario.seed)
    forget_people = [p.id for p in world.people_in("forget")]
    retain = world.qa("retain")

    def forget_docs(people: Sequence[str]) -> list[str]:
        chosen = set(people)
        docs = [world.biography(p) for p in people]
        docs += [f.text for f in world.facts("forget") if f.person_id in chosen]
        docs += [qa_document(q) for q in world.qa("forget") if q.person_id in chosen]
        docs += [c.text for p in people for c in world.canaries_of(p) for _ in range(c.repeats)]
        return docs

    def marked_forget_docs(people: Sequence[str]) -> list[Document]:
        secrets = [v for p in people for v in world.person(p).attributes.values()]
        secrets += [c.secret for p in people for c in world.canaries_of(p)]
        return [mark(doc, secrets) for doc in forget_docs(people)]

    def wrong_answers(people: Sequence[str]) -> list[str]:
        chosen = set(people)
        by_attribute: dict[str, list[str]] = {}
        for q in retain:
            by_attribute.setdefault(q.attribute, []).append(q.answer)
        docs = []
        for i, q in enumerate(q for q in world.qa("forget") if q.person_id in chosen):
            pool = by_attribute[q.attribute]
            docs.append(qa_text(q.question, pool[i % len(pool)]))
        return docs

    def eval_data(lm: Any, cfg: EvalConfig, people: Optional[Sequence[str]] = None) -> EvalData:
        return world_eval_data(world, lm, cfg, forget_people=None if people is None else list(people))

    def rephrased_eval_data(lm: Any, cfg: EvalConfig, people: Optional[Sequence[str]] = None) -> EvalData:
        return rephrased_world_eval_data(world, lm, cfg, people)

    return UnlearningData(
        source="world", target_corpus=corpus(world, ["forget", "retain"]), retrain_corpus=corpus(world, ["retain"]),
        tokenizer_texts=tokenizer_texts(world), retain_docs=corpus(world, ["retain"]),
        units=forget_people, forget_docs=forget_docs, wrong_answers=wrong_answers, eval_data=eval_data,
        rephrased_eval_data=rephrased_eval_data, summary={"source": "world", **world.summary()},
        marked_forget_docs=marked_forget_docs)


def tofu_data(scenario: UnlearningScenario, base_dir: Optional[Path] = None) -> UnlearningData:
    cfg = scenario.data
    folder = Path(cfg.tofu_dir).expanduser() if cfg.tofu_dir else None
    if folder is not None and not folder.is_absolute() and base_dir is not None:
        folder = base_dir / folder
    tofu = load_tofu(folder, forget=cfg.forget, retain=cfg.retain, holdout=cfg.holdout)
    if cfg.retain_authors is not None:
        retain = tofu.retain[: cfg.retain_authors * TOFU_QA_PER_AUTHOR]
        # The retain truth ratio scores retain_perturbed as knowledge the models kept: only the authors kept.
        kept = {it.question for it in retain}
        perturbed = [it for it in tofu.retain_perturbed if it.question in kept]
        if not perturbed:
            raise MemorylabError(f"data.retain_authors: the first {cfg.retain_authors} retain author(s) have no "
                                 "item in retain_perturbed, which the retain truth ratio needs; keep more authors")
        tofu = replace(tofu, retain=retain, retain_perturbed=perturbed)
    author_of = {id(item): f"author{i // TOFU_QA_PER_AUTHOR}" for i, item in enumerate(tofu.forget)}
    units = list(dict.fromkeys(author_of[id(item)] for item in tofu.forget))

    def items_of(authors: Sequence[str]) -> list[TofuItem]:
        chosen = set(authors)
        return [item for item in tofu.forget if author_of[id(item)] in chosen]

    # Training never reads what the truth ratio scores (the paraphrased and perturbed answers): unlearning on
    # them would lower the very probabilities the forget quality compares, as TOFU's protocol (forget QA only)
    # does not. Every training document is an Example, as in TOFU: one QA pair a row, its answer alone scored.
    # ULD's wrong answers are retain answers, as the world's are retain people's.
    def forget_docs(authors: Sequence[str]) -> list[Document]:
        return qa_examples(items_of(authors))

    def wrong_answers(authors: Sequence[str]) -> list[Document]:
        wrong = [replace(item, answer=tofu.retain[i % len(tofu.retain)].answer)
                 for i, item in enumerate(items_of(authors))]
        return qa_examples(wrong)

    def eval_data(lm: Any, ecfg: EvalConfig, authors: Optional[Sequence[str]] = None) -> EvalData:
        subset = tofu if authors is None else TofuData(forget=items_of(authors), retain=tofu.retain,
                                                       holdout=tofu.holdout, retain_perturbed=tofu.retain_perturbed)
        return tofu_eval_data(subset, ecfg, max_retain=cfg.retain_eval_items, lm=lm)

    def rephrased_eval_data(lm: Any, ecfg: EvalConfig, authors: Optional[Sequence[str]] = None) -> EvalData:
        return rephrased_tofu_eval_data(eval_data(lm, ecfg, authors),
                                        tofu.forget if authors is None else items_of(authors))

    retain_docs = qa_examples(tofu.retain)
    return UnlearningData(
        source="tofu", target_corpus=qa_examples(tofu.forget) + retain_docs, retrain_corpus=retain_docs,
        tokenizer_texts=qa_documents(tofu.retain), retain_docs=retain_docs, units=units, forget_docs=forget_docs,
        wrong_answers=wrong_answers, eval_data=eval_data, rephrased_eval_data=rephrased_eval_data,
        summary={"source": "tofu", "forget": len(tofu.forget), "retain": len(tofu.retain),
                 "holdout": len(tofu.holdout), "forget_authors": len(units)})


def unlearning_data(scenario: UnlearningScenario, base_dir: Optional[Path] = None) -> UnlearningData:
    return world_data(scenario) if scenario.data.source == "world" else tofu_data(scenario, base_dir)
