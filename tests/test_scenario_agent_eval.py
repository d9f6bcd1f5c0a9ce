"""An agent evaluation is checked against its agent when it loads: the agent file or inline mapping, its
kind, and whether the synthetic sessions fit the agent's world; each problem on the evaluation file's line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memorylab.cli import app

SCENARIOS = Path(__file__).parents[1] / "scenarios"
HEAD = "name: e\nkind: memory_agent_eval\n"


def problems(tmp_path: Path, text: str) -> list[str]:
    shutil.copy(SCENARIOS / "agent.yaml", tmp_path / "agent.yaml")
    shutil.copy(SCENARIOS / "quickstart.yaml", tmp_path / "quickstart.yaml")
    (tmp_path / "eval.yaml").write_text(text)
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "eval.yaml")])
    assert "Traceback" not in result.output
    return [] if result.exit_code == 0 else [line.replace(f"{tmp_path}/", "")
                                             for line in result.stderr.strip().splitlines()]


@pytest.mark.parametrize("text,where,says", [
    (HEAD + "agent: missing.yaml\n", "eval.yaml:3: agent: ", "the agent scenario: "),
    (HEAD + "agent: quickstart.yaml\n", "eval.yaml:3: agent: ",
     "a 'memorization' scenario; an evaluation needs a memory_agent scenario"),
    (HEAD + "agent: agent.yaml\nsynthetic:\n  new_people: 7\n", "eval.yaml:5: synthetic.new_people: ",
     "7 is more than the agent world's 6 holdout people"),
    (HEAD + "agent: agent.yaml\nsynthetic:\n  known_people: 99\n", "eval.yaml:5: synthetic.known_people: ",
     "99 is more than the agent world's"),
    (HEAD + "agent: agent.yaml\nserve_eval: false\ncompare: {}\n", "eval.yaml:5: compare: ",
     "needs dataset.source locomo"),
    (HEAD + "agent: eval.yaml\n", "eval.yaml:3: agent: ", "leads back to itself"),
    (HEAD + "agent:\n  name: a\n  kind: memory_agent\n  serve:\n    port: 99999\n", "eval.yaml:7: agent.serve.port: ",
     "less than or equal to 65535"),
    (HEAD + "agent:\n  name: a\n  kind: memory_agent\n  serv: {}\n", "eval.yaml:6: agent.serv: ", "unknown key"),
], ids=["missing-file", "wrong-kind", "too-many-new-people", "too-many-known-people", "compare-on-synthetic",
        "names-itself", "inline-bad-port", "inline-unknown-key"])
def test_bad_agent_evaluations_fail_at_their_line(tmp_path, text, where, says):
    lines = problems(tmp_path, text)
    assert any(line.startswith(where) and says in line for line in lines), lines


def test_the_shipped_evaluations_and_a_fitting_one_load(tmp_path):
    assert problems(tmp_path, HEAD + "agent: agent.yaml\nsynthetic:\n  new_people: 6\n") == []
    for name in ("agent_eval.yaml", "locomo_dev.yaml"):
        result = CliRunner().invoke(app, ["validate", str(SCENARIOS / name)])
        assert result.exit_code == 0, result.output
