"""Retention probes: groups and control, insertion steps and repeat counts, packing, and the summary."""

from __future__ import annotations

from collections import Counter

import pytest

from memorylab.continual.probes import insertion_steps, pack_once, plan_probes, retention_summary
from memorylab.data import QA


def candidates(people=12, facts=3):
    return [QA(f"Q{p}-{a}?", f"A{p}-{a}", f"q{p:03d}", f"attr{a}") for p in range(people) for a in range(facts)]


def test_plan_has_disjoint_groups_and_a_control_that_is_never_inserted():
    plan = plan_probes(candidates(), per_group=4, repeats=[1, 2], insert_at=10, spacing=3, seed=0)
    people = [{q.person_id for q in g.qa} for g in plan.groups] + [{q.person_id for q in plan.control}]
    assert [len(p) for p in people] == [4, 4, 4] and len(set.union(*people)) == 12
    assert [g.steps for g in plan.groups] == [(10,), (10, 13)]
    assert (plan.first_step, plan.last_step) == (10, 13)
    inserted = Counter(d for s in range(30) for d in plan.docs_at(s))
    assert {inserted[d] for d in plan.groups[0].docs} == {1} and {inserted[d] for d in plan.groups[1].docs} == {2}
    assert not set(plan.control_docs) & set(inserted)
    again = plan_probes(candidates(), per_group=4, repeats=[1, 2], insert_at=10, spacing=3, seed=0)
    assert again == plan


def test_too_few_probe_people_is_refused():
    with pytest.raises(ValueError, match="12 probe people needed"):
        plan_probes(candidates(people=11), per_group=4, repeats=[1, 2], insert_at=0, spacing=1, seed=0)


def test_insertion_steps():
    assert insertion_steps(5, 4, 1) == (5, 6, 7, 8)
    assert insertion_steps(0, 1, 7) == (0,)


def test_pack_once_keeps_every_document_exactly_once():
    docs = [[i] * (1 + i % 5) for i in range(20)]
    rows = pack_once(docs, seq_len=8)
    assert all(len(r) <= 8 for r in rows)
    assert sorted(t for r in rows for t in r) == sorted(t for d in docs for t in d)


def test_retention_summary_reads_before_peak_and_final():
    steps = [0, 10, 11, 20, 30]  # inserted at 10 (once): 10 is before, 11 the peak
    summary = retention_summary(steps, [0.5, 0.5, 1.0, 0.9, 0.75], [0.1, 0.1, 0.5, 0.2, 0.1], 10, 10)
    assert summary["recognition_peak"] == 1.0 and summary["recall_before"] == 0.1
    assert summary["recognition_retained"] == pytest.approx(0.5) and summary["recall_retained"] == pytest.approx(0.0)
    flat = retention_summary(steps, [0.5] * 5, [0.1] * 5, 10, 10)
    assert flat["recognition_retained"] is None and flat["recall_retained"] is None  # nothing rose: not measurable
