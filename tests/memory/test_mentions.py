"""Who a question is about: the memories about a person it names (adaptive retrieval reads them even when the
generator is sure), and nicknames resolved to names (retrieval then finds the facts stored under the name)."""

from __future__ import annotations

from memorylab.memory.facts import parse_fact
from memorylab.memory.mentions import alias_queries, named_in
from memorylab.memory.records import MemoryRecord


def keyed(i: int, text: str) -> MemoryRecord:
    fact = parse_fact(text)
    return MemoryRecord(id=f"m{i}", tenant="t", agent="a", text=text, created_at=0.0, updated_at=0.0,
                        subject=fact.subject, attribute=fact.attribute)


MEMORIES = [keyed(1, "We call Ada Park the quiet falcon."), keyed(2, "Ada Park was born in Lisbon."),
            keyed(3, "Bo Li works for Acme Labs."), keyed(4, "hello there")]


def test_named_in_finds_memories_about_the_person_asked():
    assert [r.id for r in named_in("Where was Ada Park born?", MEMORIES)] == ["m1", "m2"]
    assert [r.id for r in named_in("where does bo li work?", MEMORIES)] == ["m3"]  # case does not matter
    assert [r.id for r in named_in("Where was the quiet falcon born?", MEMORIES)] == ["m1"]
    assert named_in("Where was Bo Lin born?", MEMORIES) == []  # whole words only
    assert named_in("Where was Zed born?", MEMORIES) == []


def test_alias_queries_ask_again_with_the_name():
    (alias, question), = alias_queries("Where was the quiet falcon born?", MEMORIES)
    assert alias.id == "m1" and question == "Where was Ada Park born?"
    assert alias_queries("Where was Ada Park, the quiet falcon, born?", MEMORIES) == []  # the name is there already
    assert alias_queries("Where was Bo Li born?", MEMORIES) == []
