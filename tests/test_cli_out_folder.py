"""The run folder: --overwrite replaces a previous run only once the new one has begun; --out that cannot be
made is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from memorylab.cli import app
from memorylab.errors import MemorylabError
from memorylab.runners.run_folder import MARKER, marked_folder, previous_run_aside


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


SCENARIOS = Path(__file__).parents[1] / "scenarios"
FILES = {"run": SCENARIOS / "quickstart.yaml", "tune": SCENARIOS / "sweep_methods.yaml"}


@pytest.mark.parametrize("command", sorted(FILES))
def test_an_out_folder_that_cannot_be_made_is_refused_in_one_line(tmp_path, command):
    (tmp_path / "afile").write_text("")
    unmakeable = [(tmp_path / "afile" / "sub", "Not a directory")]
    if Path("/proc/self").exists():
        unmakeable.append((Path("/proc/memorylab-test/x"), "No such file or directory"))
    for out, reason in unmakeable:
        result = CliRunner().invoke(app, [command, str(FILES[command]), "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines() == [f"error: cannot create --out {out}: {reason}"]
    # A folder that can be made is not left behind by the check.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def fail_in_a_ray_task(cause: BaseException):
    from ray.exceptions import RayTaskError

    def run_scenario(*args, **kwargs):
        traceback = f"\x1b[36mray::train()\x1b[39m\nTraceback (most recent call last):\n  ...\n{cause!r}"
        raise RayTaskError("train", traceback, cause).as_instanceof_cause()
    return run_scenario


def test_an_os_error_in_a_ray_task_ends_as_one_line(tmp_path, monkeypatch):
    hub = OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nCheck your connection.")
    monkeypatch.setattr("memorylab.runners.run_scenario", fail_in_a_ray_task(hub))
    result = CliRunner().invoke(app, ["run", str(FILES["run"]), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        "error: OSError: We couldn't connect to 'https://huggingface.co' to load the files. Check your connection."]


def test_a_bug_in_a_ray_task_keeps_its_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr("memorylab.runners.run_scenario", fail_in_a_ray_task(TypeError("a bug")))
    result = CliRunner().invoke(app, ["run", str(FILES["run"]), "--out", str(tmp_path / "x")])
    assert isinstance(result.exception, TypeError) and "error:" not in result.output


def test_a_ray_actor_that_died_ends_as_one_line(tmp_path, monkeypatch):
    from ray.exceptions import ActorDiedError

    def run_scenario(*args, **kwargs):  # as when a Serve proxy failed its health checks on an overloaded machine
        raise ActorDiedError()
    monkeypatch.setattr("memorylab.runners.run_scenario", run_scenario)
    result = CliRunner().invoke(app, ["run", str(FILES["run"]), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: a Ray actor of the run died (") and "--resume" in lines[0]
