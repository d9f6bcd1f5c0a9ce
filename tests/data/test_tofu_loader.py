"""TOFU loader: the shared JSON Lines files, their invariants, and one-line errors for damaged files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memorylab.data.prompts import qa_text
from memorylab.data.tofu import (
    TofuItem,
    default_tofu_dir,
    load_tofu,
    load_tofu_split,
    qa_documents,
)
from memorylab.errors import MemorylabError


def _tofu_dir() -> Path:
    try:
        return default_tofu_dir()
    except MemorylabError as exc:
        pytest.skip(f"TOFU data not available: {exc}")


@pytest.fixture(scope="module")
def tofu_dir() -> Path:
    return _tofu_dir()


@pytest.fixture(scope="module")
def splits(tofu_dir):
    return {name: load_tofu_split(name, tofu_dir)
            for name in ("full", "forget10", "retain90", "holdout10", "retain_perturbed")}


def questions(items):
    return {it.question for it in items}


def test_row_counts_match_readme(splits):
    assert {k: len(v) for k, v in splits.items()} == {
        "full": 4000, "forget10": 400, "retain90": 3600, "holdout10": 400, "retain_perturbed": 400,
    }


def test_forget_and_retain_are_disjoint_and_make_up_full(splits):
    forget, retain, full = questions(splits["forget10"]), questions(splits["retain90"]), questions(splits["full"])
    assert not forget & retain
    assert full == forget | retain


def test_holdout_is_outside_full_and_retain_perturbed_inside_retain(splits):
    assert not questions(splits["holdout10"]) & questions(splits["full"])
    assert questions(splits["retain_perturbed"]) <= questions(splits["retain90"])


def test_perturbed_splits_carry_paraphrases_and_perturbations(splits):
    for name in ("forget10", "retain_perturbed"):
        for it in splits[name]:
            assert isinstance(it, TofuItem)
            assert it.paraphrased_answer and it.paraphrased_question
            assert len(it.perturbed_answers) == 5 and isinstance(it.perturbed_answers, tuple)
    first = splits["forget10"][0]
    assert first.answer == "The author's full name is Hsiao Yun-Hwa."
    assert first.paraphrased_answer == "Hsiao Yun-Hwa is the complete name of the writer."
    plain = splits["full"][0]
    assert plain.paraphrased_answer is None and plain.perturbed_answers == () and plain.paraphrased_question is None


def test_load_tofu_bundles_the_splits(tofu_dir):
    data = load_tofu(tofu_dir)
    assert (len(data.forget), len(data.retain), len(data.holdout), len(data.retain_perturbed)) == (400, 3600, 400, 400)
    assert not questions(data.forget) & questions(data.retain)
    assert load_tofu().forget == data.forget  # the default folder is the same one


def test_load_tofu_rejects_overlapping_forget_and_retain(tofu_dir):
    with pytest.raises(MemorylabError, match="forget and retain must be disjoint"):
        load_tofu(tofu_dir, forget="forget10", retain="full")


def test_load_tofu_rejects_a_holdout_the_model_trained_on(tofu_dir):
    with pytest.raises(MemorylabError, match="splits retain90 and retain90 share .*holdout and retain must be"):
        load_tofu(tofu_dir, forget="forget10", retain="retain90", holdout="retain90")


def test_load_tofu_rejects_retain_perturbed_outside_the_retain_set(tofu_dir, tmp_path):
    import shutil

    for name in ("forget10", "holdout10", "retain_perturbed"):
        shutil.copy(tofu_dir / f"{name}.jsonl", tmp_path / f"{name}.jsonl")
    dropped = load_tofu_split("retain_perturbed", tofu_dir)[0].question
    lines = (tofu_dir / "retain90.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "retain90.jsonl").write_text("".join(line for line in lines if json.loads(line)["question"] != dropped),
                                            encoding="utf-8")
    with pytest.raises(MemorylabError, match="retain_perturbed has 1 question.s. not in retain90"):
        load_tofu(tmp_path)


def test_qa_documents_use_memorylab_qa_format(splits):
    item = TofuItem("Who wrote X?", "Y wrote X.")
    assert qa_documents([item]) == ["Question: Who wrote X?\nAnswer: Y wrote X."]
    docs = qa_documents(splits["forget10"][:3])
    assert docs == [qa_text(it.question, it.answer) for it in splits["forget10"][:3]]


def test_default_dir_prefers_env_var(tmp_path, monkeypatch):
    (tmp_path / "tofu").mkdir()
    monkeypatch.setenv("MEMORYLAB_SHARED_DATA", str(tmp_path))
    assert default_tofu_dir() == tmp_path / "tofu"


def test_default_dir_error_names_where_it_looked(tmp_path, monkeypatch):
    import memorylab.data.tofu as tofu_mod

    monkeypatch.setenv("MEMORYLAB_SHARED_DATA", str(tmp_path / "nowhere"))
    # Pretend the module lives in a repository with no ../shared next to it.
    monkeypatch.setattr(tofu_mod, "__file__", str(tmp_path / "repo" / "memorylab" / "data" / "tofu.py"))
    with pytest.raises(MemorylabError) as err:
        default_tofu_dir()
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "tofu") in msg and str((tmp_path / "shared" / "data" / "tofu").resolve()) in msg
    assert "\n" not in msg


def _write(folder: Path, name: str, lines: list[str]) -> None:
    (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_bad_json_names_file_and_line(tmp_path):
    _write(tmp_path, "full", [json.dumps({"question": "q", "answer": "a"}), "{not json"])
    with pytest.raises(MemorylabError) as err:
        load_tofu_split("full", tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'full.jsonl'}:2: bad JSON") and "\n" not in msg


def test_missing_field_names_file_line_and_field(tmp_path):
    good = {"question": "q", "answer": "a", "paraphrased_answer": "pa", "paraphrased_question": "pq",
            "perturbed_answer": ["x", "y"]}
    bad = {k: v for k, v in good.items() if k != "paraphrased_answer"}
    _write(tmp_path, "forget10", [json.dumps(good), "", json.dumps(bad)])
    with pytest.raises(MemorylabError, match=r"forget10\.jsonl:3: missing field 'paraphrased_answer'"):
        load_tofu_split("forget10", tmp_path)
    _write(tmp_path, "holdout10", [json.dumps({"question": "q"})])
    with pytest.raises(MemorylabError, match=r"holdout10\.jsonl:1: missing field 'answer'"):
        load_tofu_split("holdout10", tmp_path)


def test_wrong_types_and_unknown_split_and_missing_file(tmp_path):
    _write(tmp_path, "retain_perturbed", [json.dumps({"question": "q", "answer": "a", "paraphrased_answer": "p",
                                                      "paraphrased_question": "pq", "perturbed_answer": "x"})])
    with pytest.raises(MemorylabError, match="perturbed_answer' must be a non-empty list"):
        load_tofu_split("retain_perturbed", tmp_path)
    _write(tmp_path, "full", ["[1, 2]"])
    with pytest.raises(MemorylabError, match=r"full\.jsonl:1: expected a JSON object"):
        load_tofu_split("full", tmp_path)
    with pytest.raises(MemorylabError, match="unknown TOFU split 'forget05'"):
        load_tofu_split("forget05", tmp_path)
    with pytest.raises(MemorylabError, match="does not exist"):
        load_tofu_split("retain90", tmp_path)
