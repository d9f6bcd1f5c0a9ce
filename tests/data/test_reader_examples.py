"""Reader examples: people outside the world (no probe person leaks into training), each case as /chat
builds its prompt, and the answer a reader should give."""

from __future__ import annotations

from collections import Counter

import pytest

from memorylab.data import build_world
from memorylab.data.prompts import memory_prompt
from memorylab.data.reader import CASES, reader_examples, strangers
from memorylab.data.templates import ATTRIBUTES
from memorylab.schema.common import WorldConfig


@pytest.fixture(scope="module")
def world():
    return build_world(WorldConfig(num_people=48, forget=6, holdout=6, canaries=0), seed=0)


@pytest.fixture(scope="module")
def examples(world):
    return reader_examples(world, 2000, people=200, distractors=4, abstain="unknown", seed=0)


def test_strangers_share_nothing_with_the_world(world):
    people = strangers(world, 200, seed=0)
    assert len(people) == 200 and len({p.name for p in people}) == 200
    taken = {p.name for p in world.people} | {p.attributes[a] for p in world.people for a in ATTRIBUTES}
    assert not any(p.name in taken or set(p.attributes.values()) & taken for p in people)
    assert sum(p.id.startswith("x") for p in people) >= 80  # about half invented letter by letter


def test_every_case_is_drawn_in_its_share(examples):
    counts = Counter(e.case for e in examples)
    assert set(counts) == set(CASES)
    for case, share in CASES.items():
        assert abs(counts[case] / len(examples) - share) < 0.04


def test_each_example_is_the_prompt_chat_builds(examples):
    for e in examples:
        assert e.memories and e.prompt == memory_prompt(e.memories, e.question)
        assert len(set(e.memories)) == len(e.memories)
        # The evidence is one of the memories and states the answer (none for abstention).
        assert (e.evidence in e.memories and e.answer in e.evidence) if e.case != "abstain" else e.evidence == ""


def test_what_each_case_asks_of_the_reader(world, examples):
    known = {p.name: p for p in world.people if world.split_of(p.id) != "holdout"}
    for e in examples:
        told = "\n".join(e.memories)
        if e.case in ("copy", "alias", "newer"):
            assert e.answer in told
        if e.case == "abstain":
            assert e.answer == "unknown" and e.memories
        if e.case == "override":
            person = next(p for name, p in known.items() if name in e.question)
            assert e.answer in told and e.answer not in person.attributes.values()
        if e.case == "newer":
            assert any(w in told for w in ("now", "used to", "Actually, "))
        if e.case == "alias":
            assert "We call" in told


def test_the_same_seed_draws_the_same_examples(world, examples):
    assert reader_examples(world, 2000, people=200, distractors=4, abstain="unknown", seed=0) == examples
    assert reader_examples(world, 2000, people=200, distractors=4, abstain="unknown", seed=1) != examples


def test_some_facts_come_framed_as_people_tell_them_and_corrections_stay_plain(examples):
    from memorylab.data.reader import FRAMED, FRAMES

    openings = tuple(frame.split("{")[0] for frame in FRAMES if not frame.startswith("{"))
    lines = [m for e in examples for m in e.memories if not m.startswith(("We call", "Actually, "))]
    framed = [m for m in lines if m.startswith(openings)]
    assert abs(len(framed) / len(lines) - FRAMED) < 0.05
    assert any(m.startswith("More about ") for m in framed)  # as data/agent_sessions.py tells facts
    # A frame never hides a correction: "Actually, " is followed by the bare fact.
    corrections = [m for e in examples for m in e.memories if m.startswith("Actually, ")]
    assert corrections and not any(m[len("Actually, "):].startswith(openings) for m in corrections)
    # A framed fact is evidence too, with its answer in it.
    assert any(e.evidence.startswith(openings) and e.answer in e.evidence for e in examples)


def test_most_prompts_are_as_full_as_the_ones_chat_shows(examples):
    # distractors=4: /chat with top_k 5 shows five memories whenever the store holds five.
    for case in ("copy", "abstain"):
        sizes = Counter(len(e.memories) for e in examples if e.case == case)
        assert max(sizes) == 5 and sizes[5] / sum(sizes.values()) > 0.4, (case, sizes)
