"""`memorylab serve` and `run` with the agent kinds: wrong kinds and bad files fail in one line, exit 2,
before anything starts."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from memorylab.cli import app

SCENARIOS = Path(__file__).parents[1] / "scenarios"


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_serve_needs_a_memory_agent_scenario():
    result = invoke("serve", str(SCENARIOS / "quickstart.yaml"))
    assert result.exit_code == 2
    assert "needs kind: memory_agent" in result.output and "Traceback" not in result.output


def test_serve_reports_scenario_problems_by_line(tmp_path):
    bad = tmp_path / "agent.yaml"
    bad.write_text("name: a\nkind: memory_agent\nmemory:\n  retrieval: {top_k: 0}\n")
    result = invoke("serve", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:4: memory.retrieval.top_k:" in result.output


def test_an_agent_is_served_not_run():
    result = invoke("run", str(SCENARIOS / "agent.yaml"))
    assert result.exit_code == 2
    assert "is not run but used with `memorylab serve`: memorylab serve" in result.output
