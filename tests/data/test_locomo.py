"""LoCoMo importer: the shared locomo5_dev.json, its repaired evidence, and one-line errors for broken files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from memorylab.data.locomo import CATEGORIES, default_locomo_path, load_locomo, session_timestamp
from memorylab.errors import MemorylabError


@pytest.fixture(scope="module")
def locomo_path() -> Path:
    try:
        return default_locomo_path()
    except MemorylabError as exc:
        pytest.skip(f"LoCoMo data not available: {exc}")


@pytest.fixture(scope="module")
def conversations(locomo_path):
    return load_locomo(locomo_path)


def test_the_dev_file(conversations):
    # README: conversations conv-26, conv-30, conv-41, conv-42, conv-43 and 999 questions.
    assert [c.sample_id for c in conversations] == ["conv-26", "conv-30", "conv-41", "conv-42", "conv-43"]
    assert sum(len(c.probes) for c in conversations) == 999
    first = conversations[0]
    assert (first.speaker_a, first.speaker_b) == ("Caroline", "Melanie")
    turn = first.turns[0]
    assert (turn.dia_id, turn.speaker, turn.session) == ("D1:1", "Caroline", 1)
    assert turn.text.startswith("Hey Mel!")
    assert turn.session_date_time == "1:56 pm on 8 May, 2023"
    probe = first.probes[0]
    assert probe.question == "When did Caroline go to the LGBTQ support group?"
    assert (probe.answer, probe.evidence, probe.category) == ("7 May 2023", ("D1:3",), 2)
    assert probe.category_name == "temporal"


def test_turns_are_in_session_order_and_unique(conversations):
    for conv in conversations:
        ids = [t.dia_id for t in conv.turns]
        assert len(set(ids)) == len(ids)
        sessions = [t.session for t in conv.turns]
        assert sessions == sorted(sessions)
        assert all(t.dia_id.startswith(f"D{t.session}:") for t in conv.turns)
        assert all(t.session_timestamp is not None for t in conv.turns)
    assert any(t.image_caption for conv in conversations for t in conv.turns)


def test_probes(conversations):
    probes = [p for c in conversations for p in c.probes]
    assert {p.category for p in probes} == set(CATEGORIES)
    assert all(isinstance(p.answer, str) and p.answer for p in probes)  # bare years become strings
    adversarial = [p for p in probes if p.category == 5]
    assert len(adversarial) == 237 and all(p.adversarial_answer for p in adversarial)
    for conv in conversations:
        ids = {t.dia_id for t in conv.turns}
        assert all(e in ids for p in conv.probes for e in p.evidence)
    # Two open-domain questions of conv-26 have no evidence at all.
    assert sum(1 for p in probes if not p.evidence) == 2


def test_malformed_evidence_is_repaired_or_set_aside(conversations):
    by_question = {p.question: p for c in conversations for p in c.probes}
    assert by_question["What did Melanie paint recently?"].evidence == ("D8:6", "D9:17")  # "D8:6; D9:17"
    tim = by_question["What authors has Tim read books from?"]
    assert "D11:26" in tim.evidence  # "D:11:26"
    nate = by_question["What things has Nate reccomended to Joanna?"]
    assert nate.unresolved_evidence == ("D10:19",)  # conv-42 has no turn D10:19
    assert by_question["What is one of Joanna's favorite movies?"].unresolved_evidence == ("D",)


def test_session_timestamp():
    assert session_timestamp("1:56 pm on 8 May, 2023") == 1683554160.0  # 2023-05-08T13:56:00Z
    assert session_timestamp("12:00 am on 1 January, 2024") == 1704067200.0
    assert session_timestamp("sometime in May") is None


# -- broken files ---------------------------------------------------------------------------------------

MINIMAL = [{
    "sample_id": "conv-x",
    "conversation": {
        "speaker_a": "Ann", "speaker_b": "Bob",
        "session_1_date_time": "1:00 pm on 1 May, 2023",
        "session_1": [{"speaker": "Ann", "dia_id": "D1:1", "text": "I adopted a cat."},
                      {"speaker": "Bob", "dia_id": "D1:2", "text": "Nice!", "blip_caption": "a photo of a cat"}],
    },
    "qa": [{"question": "What did Ann adopt?", "answer": "a cat", "evidence": ["D1:1"], "category": 4},
           {"question": "What did Bob adopt?", "adversarial_answer": "a dog", "evidence": [], "category": 5}],
}]


def write(tmp_path: Path, data, name: str = "locomo.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def broken(mutate):
    data = copy.deepcopy(MINIMAL)
    mutate(data)
    return data


def test_minimal_file(tmp_path):
    (conv,) = load_locomo(write(tmp_path, MINIMAL))
    assert [t.image_caption for t in conv.turns] == [None, "a photo of a cat"]
    assert conv.probes[1].answer == conv.probes[1].adversarial_answer == "a dog"
    assert conv.probes[1].evidence == ()


@pytest.mark.parametrize("data, field", [
    ("{not json", "not JSON"),
    ({"sample_id": "x"}, "JSON list"),
    ([], "no conversation"),
    ([3], "expected a JSON object"),
    (broken(lambda d: d[0].pop("conversation")), "'conversation'"),
    (broken(lambda d: d[0].pop("sample_id")), "'sample_id'"),
    (broken(lambda d: d[0].pop("qa")), "'qa'"),
    (broken(lambda d: d[0]["conversation"].pop("speaker_a")), "'speaker_a'"),
    (broken(lambda d: d[0]["conversation"].pop("session_1")), "session_N"),
    (broken(lambda d: d[0]["conversation"].pop("session_1_date_time")), "'session_1_date_time'"),
    (broken(lambda d: d[0]["conversation"]["session_1"][0].pop("dia_id")), "'dia_id'"),
    (broken(lambda d: d[0]["conversation"]["session_1"][1].update(dia_id="D1:1")), "repeats"),
    (broken(lambda d: d[0]["conversation"]["session_1"][0].update(text=None)), "'text'"),
    (broken(lambda d: d[0]["qa"][0].pop("question")), "'question'"),
    (broken(lambda d: d[0]["qa"][0].pop("answer")), "'answer'"),
    (broken(lambda d: d[0]["qa"][0].update(category=7)), "'category'"),
    (broken(lambda d: d[0]["qa"][0].update(category="4")), "'category'"),
    (broken(lambda d: d[0]["qa"][0].update(evidence="D1:1")), "'evidence'"),
    (broken(lambda d: d[0]["qa"][0].update(evidence=[1])), "'evidence'"),
    (broken(lambda d: d.append(copy.deepcopy(d[0]))), "'sample_id'"),
])
def test_broken_files_fail_with_one_line_naming_file_and_field(tmp_path, data, field):
    path = write(tmp_path, data)
    with pytest.raises(MemorylabError) as info:
        load_locomo(path)
    message = str(info.value)
    assert str(path) in message and field in message and "\n" not in message


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(MemorylabError, match="does not exist"):
        load_locomo(tmp_path / "nope.json")
    path = tmp_path / "binary.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(MemorylabError, match="not UTF-8"):
        load_locomo(path)
