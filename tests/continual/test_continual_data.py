"""The continual data: a new cohort disjoint from the world, written in the shifted domain; deterministic."""

from __future__ import annotations

import pytest

from memorylab.continual.data import continual_data, new_cohort
from memorylab.continual.domain import DOMAINS
from memorylab.data import build_world
from memorylab.schema.common import WorldConfig
from memorylab.schema.continual import ContinualScenario

SMALL = {"name": "c", "kind": "continual", "world": {"num_people": 12, "forget": 2, "holdout": 2, "canaries": 0},
         "new_data": {"people": 5, "domain": "records"},
         "continual": {"steps": 20, "eval_every": 5, "eval_questions": 10, "eval_documents": 8},
         "arms": [{"name": "a", "max_lr": 1e-3}], "retention": {"probes": 3, "insert_at": 5, "repeats": [1, 2]}}


def names(people):
    return {n for p in people for n in (p.name, p.attributes["mother"], p.attributes["father"])}


def test_new_cohort_shares_no_name_with_the_world_and_is_seeded():
    world = build_world(WorldConfig(num_people=30, forget=3, holdout=3, canaries=0), seed=0)
    cohort = new_cohort(world, 20, "n")
    assert [p.id for p in cohort[:2]] == ["n000", "n001"] and len(cohort) == 20
    assert not names(cohort) & names(world.people)
    assert len(names(cohort)) == 3 * len(cohort)
    probes = new_cohort(world, 10, "q", exclude=cohort)
    assert not names(probes) & (names(cohort) | names(world.people))
    assert new_cohort(world, 20, "n") == cohort


@pytest.mark.parametrize("domain", ["news", "records"])
def test_new_documents_are_in_the_domain_and_state_every_answer(domain):
    s = ContinualScenario.model_validate({**SMALL, "new_data": {"people": 5, "domain": domain, "paraphrases": 2}})
    data = continual_data(s)
    facts = [d for d in data.new_docs if not d.startswith("Question:")]
    assert len(facts) == 5 * 9 * 2 and len(data.new_docs) == 5 * 9 * 3
    templates = {t.split("{")[0] for ts in DOMAINS[domain].values() for t in ts}
    assert all(any(f.startswith(t[:6]) or t == "" for t in templates) for f in facts)
    for q in data.new_qa:
        person = next(p for p in data.new_people if p.id == q.person_id)
        assert sum(q.answer in d and person.name in d for d in facts) >= 2
    assert len(data.new_qa) == 10 and len(data.old_qa) == 10 and len(data.new_eval_docs) == 8
    assert not set(data.new_docs) & set(data.old_docs)
    assert continual_data(s) == data


def test_probes_come_from_a_third_cohort():
    data = continual_data(ContinualScenario.model_validate(SMALL))
    probe_people = {q.person_id for g in data.probes.groups for q in g.qa} | {q.person_id for q in data.probes.control}
    assert len(probe_people) == 9 and all(p.startswith("q") for p in probe_people)
    assert not {q.answer for g in data.probes.groups for q in g.qa} & {q.answer for q in data.new_qa}
