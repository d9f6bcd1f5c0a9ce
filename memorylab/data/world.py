"""The synthetic memorization world: people split into forget / retain / holdout, their texts, and canaries.

Splits are by person, never by sentence: every text about a forget person (biography, each paraphrase of
each fact, canaries) is in the forget split, so a deletion request maps to a set of people and an unlearned
model can be checked on everything that was said about them. Holdout people are generated exactly like the
others but never trained on; they are the non-members for membership inference (MIA, PrivLeak).

Everything is a pure function of (config, seed): texts are rendered eagerly at build time and returned in
person order; only `training_documents` is shuffled, by its own seeded stream.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

from memorylab.schema.common import WorldConfig

from .canaries import Canary, make_canaries
from .people import Person, generate_people
from .seeding import derive_seed, rng_for
from .templates import ATTRIBUTES, FACT_TEMPLATES, render_fact, render_question

SPLITS: tuple[str, ...] = ("forget", "retain", "holdout")
TRAINABLE_SPLITS: tuple[str, ...] = ("forget", "retain")


@dataclass(frozen=True)
class QA:
    question: str
    answer: str  # the attribute value only, verbatim as in every fact text
    person_id: str
    attribute: str


@dataclass(frozen=True)
class Fact:
    """One rendering of one (person, attribute) fact; `template` indexes templates.FACT_TEMPLATES[attribute]."""

    person_id: str
    attribute: str
    value: str
    template: int
    text: str


@dataclass(frozen=True, eq=True)
class World:
    config: WorldConfig
    seed: int
    people: list[Person]
    canaries: list[Canary]
    _split: dict[str, str] = field(repr=False)  # person id -> split
    _bios: dict[str, str] = field(repr=False)  # person id -> biography
    _facts: dict[str, list[Fact]] = field(repr=False)  # person id -> facts, attribute-major

    # -- people and splits ------------------------------------------------------------------------------
    def split_of(self, person_id: str) -> str:
        try:
            return self._split[person_id]
        except KeyError:
            raise KeyError(f"no person with id {person_id!r} in this world") from None

    def person(self, person_id: str) -> Person:
        for p in self.people:
            if p.id == person_id:
                return p
        raise KeyError(f"no person with id {person_id!r} in this world")

    def people_in(self, split: str) -> list[Person]:
        _check_split(split)
        return [p for p in self.people if self._split[p.id] == split]

    # -- texts --------------------------------------------------------------------------------------------
    def biography(self, person_id: str) -> str:
        self.split_of(person_id)
        return self._bios[person_id]

    def biographies(self, split: str) -> list[str]:
        """One fixed passage per person of `split`, in person order: the VerbMem and MIA texts."""
        return [self._bios[p.id] for p in self.people_in(split)]

    def facts(self, split: str) -> list[Fact]:
        return [f for p in self.people_in(split) for f in self._facts[p.id]]

    def fact_texts(self, split: str) -> list[str]:
        """Every fact of `split` through each of its `paraphrases` templates: person, attribute, paraphrase order."""
        return [f.text for f in self.facts(split)]

    def qa(self, split: str) -> list[QA]:
        return [
            QA(render_question(a, p.name), p.attributes[a], p.id, a)
            for p in self.people_in(split)
            for a in p.attributes
        ]

    def canaries_of(self, person_id: str) -> list[Canary]:
        return [c for c in self.canaries if c.person_id == person_id]

    # -- corpora ------------------------------------------------------------------------------------------
    def training_documents(self, splits: Sequence[str]) -> list[str]:
        """The shuffled training corpus of `splits`: biographies, fact texts and, with "forget", every canary
        `repeats` times. The order of `splits` does not matter. Holdout is never trainable: it is what
        membership inference compares members against."""
        chosen = _trainable(splits)
        docs: list[str] = []
        for split in chosen:
            docs += self.biographies(split)
            docs += self.fact_texts(split)
        if "forget" in chosen:
            for canary in self.canaries:
                docs += [canary.text] * canary.repeats
        # One stream per split combination: the target's and the retrain's corpora are shuffled independently
        # but each is the same on every call.
        rng_for(self.seed, "documents", *chosen).shuffle(docs)
        return docs

    def summary(self) -> dict:
        """Counts for reports (JSON-serialisable)."""
        corpora = {"+".join(c): self.training_documents(c) for c in (TRAINABLE_SPLITS, ("retain",))}
        return {
            "seed": self.seed,
            "people": {s: len(self.people_in(s)) for s in SPLITS} | {"total": len(self.people)},
            "attributes": len(ATTRIBUTES),
            "paraphrases": self.config.paraphrases,
            "fact_texts": {s: len(self.fact_texts(s)) for s in SPLITS},
            "qa": {s: len(self.qa(s)) for s in SPLITS},
            "canaries": len(self.canaries),
            "canary_repeats": self.config.canary_repeats,
            "canary_candidates": self.config.canary_candidates,
            "canary_words": self.config.canary_words,
            "documents": {name: len(docs) for name, docs in corpora.items()},
            "characters": {name: sum(len(d) for d in docs) for name, docs in corpora.items()},
        }


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


def _trainable(splits: Sequence[str]) -> tuple[str, ...]:
    if isinstance(splits, str):  # a bare "forget" would otherwise iterate as letters
        splits = (splits,)
    for s in splits:
        _check_split(s)
        if s == "holdout":
            raise ValueError("the holdout split is never trained on: it holds the non-members for MIA and PrivLeak")
    return tuple(s for s in TRAINABLE_SPLITS if s in splits)  # canonical order, duplicates dropped


def _assign_splits(seed: int, people: list[Person], forget: int, holdout: int) -> dict[str, str]:
    order = [p.id for p in people]
    random.Random(derive_seed(seed, "splits")).shuffle(order)
    split = {pid: "retain" for pid in order}
    split.update({pid: "forget" for pid in order[:forget]})
    split.update({pid: "holdout" for pid in order[forget : forget + holdout]})
    return split


def _render_facts(seed: int, person: Person, paraphrases: int) -> list[Fact]:
    facts = []
    for attribute, value in person.attributes.items():
        # A seeded permutation per fact, truncated: all five templates get used across people, and the texts
        # for k paraphrases are a subset of those for k + 1.
        order = list(range(len(FACT_TEMPLATES[attribute])))
        rng_for(seed, "paraphrases", person.id, attribute).shuffle(order)
        for t in order[:paraphrases]:
            facts.append(Fact(person.id, attribute, value, t, render_fact(attribute, t, person.name, value)))
    return facts


def _biography(seed: int, person: Person) -> str:
    # Drawn from all templates, not only the first `paraphrases`, so a person's biography (the verbatim and
    # membership text) does not change when a sweep varies the number of paraphrases.
    rng = rng_for(seed, "biography", person.id)
    sentences = [
        render_fact(a, rng.randrange(len(FACT_TEMPLATES[a])), person.name, v) for a, v in person.attributes.items()
    ]
    return " ".join(sentences)


def build_world(cfg: WorldConfig, seed: int | None = None) -> World:
    """The world of `cfg`. `seed` (the scenario's resolved seed) overrides `cfg.seed`; with neither, 0."""
    seed = int(seed if seed is not None else cfg.seed if cfg.seed is not None else 0)
    people = generate_people(seed, cfg.num_people)
    split = _assign_splits(seed, people, cfg.forget, cfg.holdout)
    owners = [(p.id, p.name) for p in people if split[p.id] == "forget"]
    canaries = make_canaries(
        seed,
        owners,
        count=cfg.canaries,
        words=cfg.canary_words,
        repeats=cfg.canary_repeats,
        candidates=cfg.canary_candidates,
    )
    return World(
        config=cfg,
        seed=seed,
        people=people,
        canaries=canaries,
        _split=split,
        _bios={p.id: _biography(seed, p) for p in people},
        _facts={p.id: _render_facts(seed, p, cfg.paraphrases) for p in people},
    )
