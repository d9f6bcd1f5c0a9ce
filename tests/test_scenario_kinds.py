"""The table of scenario kinds: every kind's entry names what it declares, and a new kind is its own files plus
one entry, which the loader, `memorylab validate | run` and the sweep checks read (a kind from outside memorylab,
validated, run through the CLI and wrapped in a sweep)."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from memorylab.cli import app
from memorylab.lazy import load_target
from memorylab.runners.contract import RunContext
from memorylab.scenario import KINDS, Kind
from memorylab.scenario_loader import ScenarioError, load_scenario

TOY = '''
"""A toy kind: the squares of the first `count` numbers."""
from typing import Literal

from pydantic import Field

from memorylab.report import write_json
from memorylab.schema.common import RunName, Strict


class ToyScenario(Strict):
    name: RunName
    kind: Literal["toy"]
    count: int = Field(3, ge=1)


def run(scenario, out_dir, context):
    squares = [i * i for i in range(scenario.count)]
    report = {"scenario": scenario.name, "kind": scenario.kind, "squares": squares, "total": sum(squares),
              "raw_config": context.raw_config}
    write_json(out_dir / "report.json", report)
    return report


def report_fields(scenario):
    return {"total"}
'''


def test_every_entry_names_what_it_declares():
    for name, kind in KINDS.items():
        assert kind.name == name and kind.schema.model_fields["kind"].annotation.__args__ == (name,)
        for entry in ("runner", "report_fields", "check"):
            assert getattr(kind, entry) is None or callable(kind.load(entry)), (name, entry)
        if kind.shared_setup is not None:
            assert callable(load_target(kind.shared_setup.prepare))
        assert (kind.runner is None) == (kind.command != "run"), name
        assert not kind.reports_progress or kind.sweepable, name


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy_kind.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    from toy_kind import ToyScenario

    monkeypatch.setitem(KINDS, "toy", Kind("toy", ToyScenario, runner="toy_kind:run",
                                           report_fields="toy_kind:report_fields"))
    yield tmp_path
    sys.modules.pop("toy_kind", None)


def test_a_new_kind_is_its_own_files_and_one_entry(toy):
    (toy / "t.yaml").write_text("name: t\nkind: toy\ncount: 4\n")
    (toy / "bad.yaml").write_text("name: t\nkind: toy\ncount: 0\n")
    runner = CliRunner()
    result = runner.invoke(app, ["validate", "t.yaml", "bad.yaml"])
    assert result.exit_code == 2 and result.stdout.splitlines() == ["ok t.yaml (toy)"]
    assert result.stderr.splitlines() == ["bad.yaml:3: count: Input should be greater than or equal to 1 (got 0)"]
    result = runner.invoke(app, ["run", "t.yaml", "--set", "count=5"])
    assert result.exit_code == 0, result.output
    report = json.loads((toy / "runs" / "t" / "report.json").read_text())
    assert report["squares"] == [0, 1, 4, 9, 16] and report["raw_config"]["count"] == 5


def test_a_sweep_reads_the_new_kind_s_figures_from_its_entry(toy):
    sweep = "name: s\nkind: sweep\nscenario: {name: t, kind: toy}\nspace: {count: {grid: [2, 3]}}\n"
    (toy / "s.yaml").write_text(sweep + "objectives: [{name: total, maximize: total}]\n")
    assert load_scenario(toy / "s.yaml").kind == "sweep"
    (toy / "wrong.yaml").write_text(sweep + "objectives: [{name: total, maximize: squares}]\n")
    with pytest.raises(ScenarioError, match="squares is not a figure of the toy report"):
        load_scenario(toy / "wrong.yaml")


def test_a_kind_that_is_not_run_says_which_command_uses_it(tmp_path, monkeypatch):
    from memorylab.runners import run_scenario

    scenario = KINDS["memory_agent"].schema.model_validate({"name": "a", "kind": "memory_agent"})
    with pytest.raises(ValueError, match="used with `memorylab serve`"):
        run_scenario(scenario, tmp_path / "run", RunContext())
