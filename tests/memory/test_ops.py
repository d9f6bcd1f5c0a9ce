"""The memory policy: deterministic ADD / NOOP / UPDATE / DELETE, and the LLM path with its fallbacks."""

import json
import logging
import re
import threading

import pytest

from memorylab.memory.ops import MemoryWriter, OpResult, build_prompt, parse_ops
from memorylab.memory.store import MemoryStore
from memorylab.schema.memory_agent import PolicySettings


def user(*texts, **extra):
    return [{"role": "user", "content": t, **extra} for t in texts]


class FakeGenerator:
    """A generator that 'follows the prompt': `answer(prompt)` returns its text; prompts are kept."""

    def __init__(self, answer):
        self.answer = answer
        self.prompts = []

    def generate(self, prompts, params):
        self.prompts += list(prompts)
        return [self.answer(p) for p in prompts]


def short_id(prompt: str, text: str) -> str:
    """The short id the prompt gave the memory with this text."""
    return re.search(rf"^(m\d+): {re.escape(text)}$", prompt, re.M).group(1)


@pytest.fixture
def store(tmp_path):
    return MemoryStore(tmp_path / "mem")


@pytest.fixture
def writer(store, embedder):
    return MemoryWriter(store, embedder)


def events(results):
    return [r.event for r in results]


def test_add_stores_each_fact_with_its_key_and_metadata(writer, store):
    results = writer.add_messages("t", "a", user("Hi! Jo Doe works for Acme Corp. Jo Doe was born in Oslo.",
                                                 timestamp="2024-05-01"), metadata={"session": 3}, source="s3")
    assert events(results) == ["ADD", "ADD"]
    record = store.get("t", "a", results[0].id)
    assert (record.text, record.subject, record.attribute, record.source) == (
        "Jo Doe works for Acme Corp.", "Jo Doe", "employer", "s3")
    assert record.metadata == {"session": 3, "timestamp": "2024-05-01"}
    assert results[0] == OpResult(record.id, "Jo Doe works for Acme Corp.", "ADD")


def test_small_talk_only_stores_nothing(writer, store):
    filler = user("Hi there!", "Thanks, that is all for now.", "Can you keep that in mind?")
    assert writer.add_messages("t", "a", filler) == []
    assert store.count() == 0


def test_only_user_messages_carry_facts(writer, store, embedder):
    messages = [{"role": "system", "content": "Jo Doe works for Acme."},
                {"role": "assistant", "content": "Got it: Al Roe lives in Rome."},
                {"role": "user", "content": "Jo Doe lives in Oslo."}]
    assert [r.memory for r in writer.add_messages("t", "a", messages)] == ["Jo Doe lives in Oslo."]
    both = MemoryWriter(store, embedder, PolicySettings(fact_roles=("user", "assistant")))
    assert [r.memory for r in both.add_messages("t", "b", messages)] == ["Al Roe lives in Rome.",
                                                                         "Jo Doe lives in Oslo."]


def test_near_duplicate_and_same_value_are_noop(writer, store):
    (added,) = writer.add_messages("t", "a", user("Jo Doe enjoys long walks on the beach at dawn."))
    (dup,) = writer.add_messages("t", "a", user("Jo Doe enjoys long walks on the beach at dawn!"))
    assert dup == OpResult(added.id, added.memory, "NOOP")
    (born,) = writer.add_messages("t", "a", user("Jo Doe was born in Oslo."))
    (same,) = writer.add_messages("t", "a", user("Oslo is where Jo Doe was born."))  # another wording, same value
    assert same.event == "NOOP" and same.id == born.id
    assert store.count() == 2


@pytest.mark.parametrize("sentence,repeat", [
    ("I like green tea with honey.", "I like green tea with honey."),
    ("Jo Doe enjoys long walks on the beach at dawn.", "Jo Doe enjoys long walks on the beach at dawn!"),
])
def test_duplicate_threshold_is_at_or_above(store, embedder, sentence, repeat):
    # The schema documents "cosine at or above which a fact is a NOOP": a repeat whose cosine equals the
    # threshold (1.0 for the very same sentence) is a NOOP; with `>` it was stored again.
    cosine = float(embedder.embed([sentence])[0] @ embedder.embed([repeat])[0])
    writer = MemoryWriter(store, embedder, PolicySettings(duplicate_threshold=min(1.0, cosine)))
    (added,) = writer.add_messages("t", "a", user(sentence))
    assert events(writer.add_messages("t", "a", user(repeat))) == ["NOOP"] and store.count() == 1, cosine


def test_metadata_refused_before_any_fact_is_written(writer, store):
    messages = user("Jo Doe lives in Bern.") + user("Al Roe lives in Rome.", timestamp=float("nan"))
    with pytest.raises(ValueError, match="metadata"):
        writer.add_messages("t", "a", messages)
    with pytest.raises(ValueError, match="metadata"):
        writer.add_messages("t", "a", user("Jo Doe lives in Bern."), metadata={"x": float("inf")})
    assert store.count() == 0


def test_conflict_updates_with_history(writer, store):
    (added,) = writer.add_messages("t", "a", user("Jo Doe works for Acme Corp."))
    (changed,) = writer.add_messages("t", "a", user("Actually, Jo Doe now works for Globex."))
    assert changed == OpResult(added.id, "Jo Doe now works for Globex.", "UPDATE",
                               previous_memory="Jo Doe works for Acme Corp.")
    assert [r.text for r in store.records("t", "a")] == ["Jo Doe now works for Globex."]
    history = store.history("t", "a", added.id)
    assert [(h.event, h.old_text, h.new_text) for h in history] == [
        ("ADD", None, "Jo Doe works for Acme Corp."),
        ("UPDATE", "Jo Doe works for Acme Corp.", "Jo Doe now works for Globex.")]


def test_similar_texts_with_different_values_or_keys_are_not_duplicates(writer, store):
    writer.add_messages("t", "a", user("Jo Doe lives in Bern."))
    assert events(writer.add_messages("t", "a", user("Jo Doe lives in Berlin."))) == ["UPDATE"]
    writer.add_messages("t", "a", user("Anna Smith works for Acme Corp."))
    assert events(writer.add_messages("t", "a", user("Anna Smyth works for Acme Corp."))) == ["ADD"]
    assert store.count() == 3


def test_a_fact_and_its_change_in_one_call(writer, store):
    results = writer.add_messages("t", "a", user("Jo Doe works as a nurse.", "Actually, Jo Doe works as a pilot."))
    assert events(results) == ["ADD", "UPDATE"] and results[0].id == results[1].id
    assert [r.text for r in store.records("t", "a")] == ["Jo Doe works as a pilot."]


def test_retraction_deletes_and_leaves_a_tombstone(writer, store):
    (added,) = writer.add_messages("t", "a", user("Jo Doe works for Globex."))
    writer.add_messages("t", "a", user("Jo Doe lives in Oslo."))
    (deleted,) = writer.add_messages("t", "a", user("Jo Doe no longer works for Globex."), source="s9")
    assert deleted == OpResult(added.id, "Jo Doe works for Globex.", "DELETE")
    assert store.get("t", "a", added.id) is None
    last = store.history("t", "a", added.id)[-1]
    assert (last.event, last.old_text, last.new_text, last.source) == ("DELETE", "Jo Doe works for Globex.", None, "s9")
    assert [r.text for r in store.records("t", "a")] == ["Jo Doe lives in Oslo."]


def test_retraction_by_similarity_and_of_everything_about_someone(writer, store):
    writer.add_messages("t", "a", user("Jo Doe likes jazz records.", "Jo Doe lives in Oslo.", "Al Roe lives in Rome."))
    (gone,) = writer.add_messages("t", "a", user("Forget that Jo Doe likes jazz records."))
    assert (gone.event, gone.memory) == ("DELETE", "Jo Doe likes jazz records.")
    # Cosine 0.60 to "Jo Doe lives in Oslo" (the shared name), but nothing in common besides: nothing deleted.
    assert writer.add_messages("t", "a", user("Forget that Jo Doe owns a yacht.")) == []
    results = writer.add_messages("t", "a", user("Forget everything about Al Roe."))
    assert [(r.event, r.memory) for r in results] == [("DELETE", "Al Roe lives in Rome.")]
    assert [r.text for r in store.records("t", "a")] == ["Jo Doe lives in Oslo."]


def test_a_retraction_of_a_stale_value_deletes_nothing(writer, store):
    writer.add_messages("t", "a", user("Jo Doe lives in Oslo."))
    assert writer.add_messages("t", "a", user("Jo Doe no longer lives in Paris.")) == []
    assert store.count() == 1


def test_a_retraction_names_a_whole_value_not_part_of_one(writer, store):
    writer.add_messages("t", "a", user("Jo Doe lives in Romeoville.", "Al Roe lives in New York."))
    assert writer.add_messages("t", "a", user("Jo Doe no longer lives in Rome.")) == []
    assert writer.add_messages("t", "a", user("Forget that Al Roe lives in York.")) == []
    assert store.count() == 2
    (gone,) = writer.add_messages("t", "a", user("Forget that Al Roe lives in new york."))
    assert (gone.event, gone.memory) == ("DELETE", "Al Roe lives in New York.")


def test_tenants_and_agents_do_not_see_each_others_facts(writer, store):
    writer.add_messages("t1", "a", user("Jo Doe works for Acme."))
    assert events(writer.add_messages("t2", "a", user("Jo Doe works for Globex."))) == ["ADD"]
    assert events(writer.add_messages("t1", "b", user("Jo Doe works for Acme."))) == ["ADD"]
    (forgotten,) = writer.add_messages("t2", "a", user("Forget everything about Jo Doe."))
    assert forgotten.memory == "Jo Doe works for Globex."
    assert store.count("t1") == 2


def test_concurrent_writers_do_not_both_add_one_fact(writer, store):
    out = []
    threads = [threading.Thread(target=lambda: out.extend(writer.add_messages("t", "a", user("Jo Doe lives in Oslo."))))
               for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(events(out)) == ["ADD", "NOOP", "NOOP", "NOOP"] and store.count() == 1


# -- the LLM path ----------------------------------------------------------------------------------------

def test_llm_decisions_are_honoured(store, embedder, caplog):
    writer = MemoryWriter(store, embedder)
    (old,) = writer.add_messages("t", "a", user("Jo Doe works for Acme Corp."))

    def answer(prompt):
        assert "f0: Jo Doe joined Globex." in prompt
        op = {"event": "UPDATE", "id": short_id(prompt, old.memory),
              "text": "Jo Doe is employed by Globex (since the merger).", "fact": "f0"}
        return "```json\n" + json.dumps([op]) + "\n```"

    llm = FakeGenerator(answer)
    writer.generator = llm
    with caplog.at_level(logging.INFO, logger="memorylab.memory.ops"):
        (result,) = writer.add_messages("t", "a", user("Jo Doe joined Globex."), infer=True)
    assert result == OpResult(old.id, "Jo Doe is employed by Globex (since the merger).", "UPDATE",
                              previous_memory="Jo Doe works for Acme Corp.")
    assert "decided by LLM" in caplog.text and len(llm.prompts) == 1


def test_llm_delete_and_noop_are_honoured(store, embedder):
    writer = MemoryWriter(store, embedder)
    a, b = writer.add_messages("t", "a", user("Jo Doe likes jazz.", "Jo Doe lives in Oslo."))
    writer.generator = FakeGenerator(lambda p: json.dumps([
        {"event": "DELETE", "id": short_id(p, a.memory), "fact": 0},
        {"event": "noop", "id": short_id(p, b.memory), "fact": "f1"}]))
    results = writer.add_messages("t", "a", user("I was wrong about the jazz.", "Jo Doe is in Oslo."), infer=True)
    assert [(r.event, r.id) for r in results] == [("DELETE", a.id), ("NOOP", b.id)]
    assert store.count() == 1


@pytest.mark.parametrize("answer", [
    "Sure! I would add it.",  # no JSON
    '[{"event": "ADD"}]',  # ADD without text
    '[{"event": "MERGE", "text": "x"}]',  # unknown event
    '[{"event": "UPDATE", "id": "m7", "text": "x"}]',  # an id that was not shown
    '[{"event": "ADD", "text": "x", "fact": "f9"}]',  # a fact that does not exist
    '{"event": "ADD", "text": "x"',  # broken JSON
])
def test_invalid_llm_answers_fall_back_to_the_deterministic_policy(store, embedder, caplog, answer):
    writer = MemoryWriter(store, embedder, generator=FakeGenerator(lambda p: answer))
    (old,) = writer.add_messages("t", "a", user("Jo Doe works for Acme Corp."))
    with caplog.at_level(logging.INFO, logger="memorylab.memory.ops"):
        results = writer.add_messages("t", "a", user("Actually, Jo Doe works for Globex.", "Jo Doe lives in Oslo."),
                                      infer=True)
    assert events(results) == ["UPDATE", "ADD"] and results[0].id == old.id
    assert "the LLM's answer was not valid" in caplog.text
    assert sorted(r.text for r in store.records("t", "a")) == ["Jo Doe lives in Oslo.", "Jo Doe works for Globex."]


def test_a_failing_or_missing_generator_falls_back(store, embedder, caplog):
    class Broken:
        def generate(self, prompts, params):
            raise RuntimeError("model not loaded")

    for generator in (Broken(), None):
        writer = MemoryWriter(store, embedder, generator=generator)
        agent = f"a-{generator is None}"
        with caplog.at_level(logging.INFO, logger="memorylab.memory.ops"):
            assert events(writer.add_messages("t", agent, user("Jo Doe lives in Oslo."), infer=True)) == ["ADD"]
    assert "no generator" in caplog.text


def test_a_fact_the_llm_omits_is_still_stored(store, embedder):
    llm = FakeGenerator(lambda p: json.dumps([{"event": "ADD", "text": "Jo Doe works for Acme Corp."}]))
    writer = MemoryWriter(store, embedder, generator=llm)
    results = writer.add_messages("t", "a", user("Jo Doe works for Acme Corp. Jo Doe lives in Oslo."), infer=True)
    assert [(r.event, r.memory) for r in results] == [("ADD", "Jo Doe works for Acme Corp."),
                                                      ("ADD", "Jo Doe lives in Oslo.")]
    # An empty (valid) answer covers nothing: every fact goes through the deterministic policy.
    writer.generator = FakeGenerator(lambda p: "[]")
    assert events(writer.add_messages("t", "a", user("Jo Doe lives in Bergen."), infer=True)) == ["UPDATE"]


def test_prompt_shows_candidates_with_short_ids_and_the_facts(store, embedder):
    writer = MemoryWriter(store, embedder, PolicySettings(candidates=2))
    writer.add_messages("t", "a", user("Jo Doe works for Acme.", "Jo Doe lives in Oslo.", "Al Roe likes tea."))
    llm = FakeGenerator(lambda p: "[]")
    writer.generator = llm
    writer.add_messages("t", "a", user("Jo Doe works for Initech."), infer=True)
    prompt = llm.prompts[0]
    assert "m0: Jo Doe works for Acme." in prompt and "m2:" not in prompt  # top 2 candidates only
    assert "f0: Jo Doe works for Initech." in prompt and "JSON" in prompt


def test_parse_ops_rejects_changing_one_memory_twice():
    twice = '[{"event": "UPDATE", "id": "m0", "text": "x"}, {"event": "DELETE", "id": "m0"}]'
    assert parse_ops(twice, {"m0"}, 1) is None
    assert [op.event for op in parse_ops('{"memory": 1} [{"event": "add", "text": "x"}]', set(), 1)] == ["ADD"]
    assert build_prompt([], ["a"]).count("(none)") == 1


def test_bad_messages_name_the_field(writer):
    with pytest.raises(ValueError, match=r"messages\[1\]\.content"):
        writer.add_messages("t", "a", [{"role": "user", "content": "ok"}, {"role": "user", "content": 3}])
    with pytest.raises(ValueError, match=r"messages\[0\]"):
        writer.add_messages("t", "a", ["Jo Doe lives in Oslo."])
