"""`memorylab run | serve | tune` on a cluster: an address from --address, RAY_ADDRESS or the scenario's
ray.address is only ever joined. An unreachable one fails in seconds with one line and exit code 1, and no
local Ray is started in its place (a mistyped address must not become a quiet one-machine run)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import ray
from typer.testing import CliRunner

from memorylab.cli import app
from memorylab.runners.run_folder import MARKER

SCENARIOS = Path(__file__).parents[2] / "scenarios"
COMMANDS = {"run": "quickstart.yaml", "serve": "agent.yaml", "tune": "sweep_methods.yaml"}


def closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def invoke(command: str, tmp_path: Path, *options: str, env: dict | None = None, folder: Path | None = None):
    folder = str(folder or tmp_path / f"out{len(list(tmp_path.iterdir()))}")  # a fresh one per call by default
    out = ["--out", folder] if command != "serve" else ["--folder", folder]
    began = time.monotonic()
    result = CliRunner().invoke(app, [command, str(SCENARIOS / COMMANDS[command]), *out, *options], env=env)
    return result, time.monotonic() - began


def assert_refused(result, seconds: float, address: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: could not reach the Ray cluster at '{address}'"), lines
    assert seconds < 30  # ray.init alone retries an unreachable GCS for minutes
    assert not ray.is_initialized()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unreachable_address_option_is_refused_at_once(ray_down, monkeypatch, tmp_path, command):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    address = f"127.0.0.1:{closed_port()}"
    assert_refused(*invoke(command, tmp_path, "--address", address), address)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_ray_address_from_the_environment_is_joined_not_replaced(ray_down, tmp_path, command):
    address = f"127.0.0.1:{closed_port()}"
    assert_refused(*invoke(command, tmp_path, env={"RAY_ADDRESS": address}), address)


def test_the_scenario_address_counts_too_and_the_option_wins(ray_down, monkeypatch, tmp_path):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # the lowest priority of the three
    in_file, option = f"127.0.0.1:{closed_port()}", f"ray://127.0.0.1:{closed_port()}"
    assert_refused(*invoke("run", tmp_path, "--set", f"ray.address={in_file}"), in_file)
    assert_refused(*invoke("run", tmp_path, "--set", f"ray.address={in_file}", "--address", option), option)


@pytest.mark.parametrize("command", ["run", "tune"])
def test_a_failed_connect_leaves_no_folder_in_the_way(ray_down, monkeypatch, tmp_path, command):
    """The run folder is made (and marked) before the runner connects; a run that could not connect takes it
    back, so running again is refused for the address again, not for a folder that holds nothing."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    address, folder = f"127.0.0.1:{closed_port()}", tmp_path / "runs" / "x"
    for _ in range(2):
        assert_refused(*invoke(command, tmp_path, "--address", address, folder=folder), address)
        assert not folder.exists()
    # A folder holding only the marker (a run killed while connecting) is not in the way either.
    folder.mkdir()
    (folder / MARKER).write_text(f"{command}\n")
    assert_refused(*invoke(command, tmp_path, "--address", address, folder=folder), address)
    assert list(folder.iterdir()) == []  # the marker is taken back; a folder it did not make is left


def test_stopping_the_agent_without_a_connection_starts_nothing(ray_down, monkeypatch):
    """serve.shutdown() would ray.init() to look for an app: a local Ray after a failed join, or minutes of
    retries against RAY_ADDRESS; `memorylab serve` calls stop_agent() on every failure, connected or not."""
    from memorylab.serve.launch import stop_agent

    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{closed_port()}")
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("stop_agent() must not start or join a Ray"))
    stop_agent()
    assert not ray.is_initialized()


@pytest.mark.parametrize("command", ["run", "tune"])
def test_overwrite_keeps_the_previous_run_when_the_new_one_cannot_connect(ray_down, monkeypatch, tmp_path,
                                                                           command):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    address, folder = f"127.0.0.1:{closed_port()}", tmp_path / "runs" / "x"
    folder.mkdir(parents=True)
    (folder / MARKER).write_text(f"{command}\n")
    (folder / "report.json").write_text("{}")
    assert_refused(*invoke(command, tmp_path, "--address", address, "--overwrite", folder=folder), address)
    assert sorted(p.name for p in folder.iterdir()) == sorted([MARKER, "report.json"])
    assert sorted(p.name for p in folder.parent.iterdir()) == ["x"]  # nothing left aside
