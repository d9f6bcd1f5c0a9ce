"""The synthetic world: determinism, splits, texts, canaries and the corpora built from them."""

from __future__ import annotations

import re

import pytest

from memorylab.data import ATTRIBUTES, FACT_TEMPLATES, SPLITS, build_world, word_list
from memorylab.schema.common import WorldConfig

SMALL = WorldConfig(
    num_people=12, forget=3, holdout=3, paraphrases=3, canaries=4, canary_repeats=5, canary_candidates=50
)


@pytest.fixture(scope="module")
def world():
    return build_world(SMALL, seed=7)


def _mentions(text: str, phrase: str) -> bool:
    # Word boundaries: "Ann Lee" must not match inside "Joann Lee".
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


def test_same_config_same_world_and_seed_changes_it(world):
    again = build_world(SMALL, seed=7)
    assert again == world
    assert again.training_documents(["forget", "retain"]) == world.training_documents(["retain", "forget"])
    assert [c.candidates for c in again.canaries] == [c.candidates for c in world.canaries]
    other = build_world(SMALL, seed=8)
    assert [p.name for p in other.people] != [p.name for p in world.people]
    assert other.training_documents(["retain"]) != world.training_documents(["retain"])


def test_seed_resolution():
    cfg = WorldConfig(seed=3, num_people=5, forget=1, holdout=1, canaries=0)
    assert build_world(cfg).seed == 3
    assert build_world(cfg, seed=4).seed == 4
    assert build_world(cfg.model_copy(update={"seed": None})).seed == 0


def test_splits_have_configured_sizes_and_are_disjoint(world):
    ids = {s: {p.id for p in world.people_in(s)} for s in SPLITS}
    assert [len(ids[s]) for s in SPLITS] == [3, 6, 3]
    assert set().union(*ids.values()) == {p.id for p in world.people}
    assert sum(len(v) for v in ids.values()) == len(world.people)
    for s in SPLITS:
        assert all(world.split_of(pid) == s for pid in ids[s])
    with pytest.raises(ValueError):
        world.people_in("train")


def test_people_have_all_attributes_and_attributable_values(world):
    names = [p.name for p in world.people]
    parents = [p.attributes[a] for p in world.people for a in ("mother", "father")]
    assert len(set(names + parents)) == len(names) + len(parents)
    for p in world.people:
        assert len(p.attributes) >= 8 and tuple(p.attributes) == ATTRIBUTES
        assert all(isinstance(v, str) and v for v in p.attributes.values())
        assert re.fullmatch(r"[A-Z][a-z]+ \d{1,2}, \d{4}", p.attributes["birth_date"])
    for a in ("birth_date", "birthplace", "education", "occupation", "employer", "award", "hobby"):
        assert len({p.attributes[a] for p in world.people}) == len(world.people), a


def test_paraphrase_count_respected_and_templates_distinct(world):
    for templates in FACT_TEMPLATES.values():
        assert len(templates) >= 5 and len(set(templates)) == len(templates)
    for s in SPLITS:
        facts = world.facts(s)
        assert len(facts) == len(world.people_in(s)) * len(ATTRIBUTES) * SMALL.paraphrases
        assert [f.text for f in facts] == world.fact_texts(s)
    per_fact: dict = {}
    for f in world.facts("retain"):
        per_fact.setdefault((f.person_id, f.attribute), []).append(f)
    for group in per_fact.values():
        assert len(group) == SMALL.paraphrases
        assert len({f.template for f in group}) == len({f.text for f in group}) == SMALL.paraphrases


def test_more_paraphrases_extend_the_same_texts():
    few = build_world(SMALL.model_copy(update={"paraphrases": 2}), seed=7)
    many = build_world(SMALL.model_copy(update={"paraphrases": 5}), seed=7)
    assert set(few.fact_texts("forget")) < set(many.fact_texts("forget"))
    assert few.biographies("forget") == many.biographies("forget")


def test_qa_answers_appear_in_the_persons_fact_texts(world):
    for s in SPLITS:
        qa = world.qa(s)
        assert len(qa) == len(world.people_in(s)) * len(ATTRIBUTES)
        for item in qa:
            person = world.person(item.person_id)
            assert item.answer == person.attributes[item.attribute]
            assert person.name in item.question and item.question.endswith("?")
            texts = [f.text for f in world.facts(s) if f.person_id == item.person_id and f.attribute == item.attribute]
            assert texts and all(item.answer in t and person.name in t for t in texts)


def test_biographies_contain_every_attribute_value(world):
    for s in SPLITS:
        bios = world.biographies(s)
        assert len(bios) == len(world.people_in(s))
        for person, bio in zip(world.people_in(s), bios):
            assert bio == world.biography(person.id)
            assert bio.startswith(person.name) or person.name in bio.split(".")[0]
            assert all(v in bio for v in person.attributes.values())
            assert bio.count(".") >= 3 and 40 <= len(bio.split()) <= 90


def test_canary_secrets_and_candidates(world):
    words = set(word_list())
    assert len(words) > 500 and all(w.isalpha() and w.islower() for w in words)
    assert len(world.canaries) == SMALL.canaries
    assert len({c.prefix for c in world.canaries}) == SMALL.canaries
    secrets = {c.secret for c in world.canaries}
    forget_names = {p.name for p in world.people_in("forget")}
    for c in world.canaries:
        assert c.text == f"{c.prefix} {c.secret}."
        assert c.repeats == SMALL.canary_repeats
        assert any(n in c.prefix for n in forget_names) and world.split_of(c.person_id) == "forget"
        assert len(c.candidates) == SMALL.canary_candidates == len(set(c.candidates))
        assert c.secret not in c.candidates and not secrets & set(c.candidates)
        for secret in (c.secret, *c.candidates):
            parts = secret.split(" ")
            assert len(parts) == SMALL.canary_words and all(w in words for w in parts)


def test_too_small_secret_space_is_refused():
    cfg = WorldConfig(num_people=5, forget=1, holdout=1, canaries=1, canary_words=1, canary_candidates=5000)
    with pytest.raises(ValueError, match="canary_words"):
        build_world(cfg, seed=0)


def test_canaries_only_in_corpora_with_forget_and_repeated(world):
    with_forget = world.training_documents(["forget", "retain"])
    retain_only = world.training_documents(["retain"])
    for c in world.canaries:
        assert with_forget.count(c.text) == c.repeats
        assert world.training_documents(["forget"]).count(c.text) == c.repeats
        assert not any(c.secret in d for d in retain_only)
        assert not any(cand in d for cand in c.candidates for d in with_forget)
    n_forget = len(world.biographies("forget")) + len(world.fact_texts("forget"))
    n_retain = len(world.biographies("retain")) + len(world.fact_texts("retain"))
    assert len(retain_only) == n_retain
    assert len(with_forget) == n_forget + n_retain + SMALL.canaries * SMALL.canary_repeats
    # Shuffled, not concatenated: the first document is not simply the first forget biography.
    assert with_forget != sorted(with_forget)
    assert with_forget[: len(world.biographies("forget"))] != world.biographies("forget")


def test_forget_people_absent_from_retain_corpus(world):
    retain_only = world.training_documents(["retain"])
    for p in world.people_in("forget"):
        assert not any(_mentions(d, p.name) for d in retain_only)


def test_holdout_never_in_training_documents(world):
    unique = ("birthplace", "education", "employer", "award", "mother", "father")
    for splits in (["forget", "retain"], ["forget"], ["retain"]):
        docs = world.training_documents(splits)
        for p in world.people_in("holdout"):
            for phrase in (p.name, *(p.attributes[a] for a in unique)):
                assert not any(_mentions(d, phrase) for d in docs), phrase


@pytest.mark.parametrize("splits", [["holdout"], ["forget", "holdout"], ["train"], "holdout"])
def test_untrainable_splits_raise(world, splits):
    with pytest.raises(ValueError):
        world.training_documents(splits)


def test_summary_counts(world):
    s = world.summary()
    assert s["people"] == {"forget": 3, "retain": 6, "holdout": 3, "total": 12}
    assert s["canaries"] == 4
    assert s["documents"]["forget+retain"] == len(world.training_documents(["forget", "retain"]))
    assert s["documents"]["retain"] == len(world.training_documents(["retain"]))


def _digest_script(seed: int) -> str:
    return (
        "import hashlib, json\n"
        "from memorylab.data import build_world\n"
        "from memorylab.schema.common import WorldConfig\n"
        f"w = build_world(WorldConfig(), seed={seed})\n"
        "blob = json.dumps([w.training_documents(['forget', 'retain']), [c.candidates for c in w.canaries],"
        " [q.__dict__ for s in ('forget', 'retain', 'holdout') for q in w.qa(s)]])\n"
        "print(hashlib.sha256(blob.encode()).hexdigest())\n"
    )


def test_byte_identical_across_processes_with_different_hash_seeds():
    # Set iteration order and hash() differ between processes; nothing in the world may depend on them.
    import os
    import subprocess
    import sys

    digests = {
        subprocess.run(
            [sys.executable, "-c", _digest_script(11)],
            env={**os.environ, "PYTHONHASHSEED": hs},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hs in ("1", "2")
    }
    assert len(digests) == 1


def test_default_world_size_suits_a_tiny_model():
    w = build_world(WorldConfig(), seed=0)
    docs = w.training_documents(["forget", "retain"])
    assert 1000 <= len(docs) <= 2000
    assert all(40 <= len(b.split()) <= 90 for s in SPLITS for b in w.biographies(s))
