"""The run folder: --overwrite replaces a previous run only once the new one has begun; --out that cannot be
made is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from memorylab.errors import MemorylabError
from memorylab.runners import MARKER, marked_folder, previous_run_aside


def previous_run(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("continual\n")
    (folder / "report.json").write_text("old")


def test_overwrite_deletes_the_previous_run_once_the_new_one_wrote(tmp_path):
    folder = tmp_path / "x"
    previous_run(folder)
    with marked_folder(folder, "continual", overwrite=True):
        assert not (folder / "report.json").exists()  # a fresh folder for the new run
        assert (previous_run_aside(folder) / "report.json").read_text() == "old"  # kept until it is done
        (folder / "report.json").write_text("new")
    assert (folder / "report.json").read_text() == "new" and not previous_run_aside(folder).exists()


def test_a_run_that_fails_after_writing_replaces_the_previous_one(tmp_path):
    folder = tmp_path / "x"
    previous_run(folder)
    with pytest.raises(RuntimeError):
        with marked_folder(folder, "continual", overwrite=True):
            (folder / "partial.json").write_text("new")
            raise RuntimeError("trainer died")
    assert sorted(p.name for p in folder.iterdir()) == [MARKER, "partial.json"]
    assert not previous_run_aside(folder).exists()


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_a_run_that_fails_before_writing_restores_the_previous_one(tmp_path, failure):
    folder = tmp_path / "x"
    previous_run(folder)
    with pytest.raises(failure):
        with marked_folder(folder, "continual", overwrite=True):
            raise failure()
    assert (folder / "report.json").read_text() == "old" and (folder / MARKER).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


def test_a_previous_run_left_aside_by_a_killed_overwrite_comes_back(tmp_path):
    folder = tmp_path / "x"
    previous_run(previous_run_aside(folder))  # the overwrite was SIGKILLed before its run wrote anything
    folder.mkdir()
    (folder / MARKER).write_text("continual\n")
    with pytest.raises(RuntimeError):
        with marked_folder(folder, "continual"):
            raise RuntimeError("cannot connect")
    assert (folder / "report.json").read_text() == "old" and not previous_run_aside(folder).exists()


def test_overwrite_never_moves_a_folder_memorylab_did_not_write(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    with pytest.raises(MemorylabError, match="not written by memorylab"):
        with marked_folder(folder, "continual", overwrite=True):
            pass
    assert [p.name for p in tmp_path.iterdir()] == ["mine"] and (folder / "thesis.tex").exists()
