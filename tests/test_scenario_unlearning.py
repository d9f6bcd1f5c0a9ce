"""`kind: unlearning` settings that cannot work fail at validation, with the file's line, before training."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from memorylab.cli import app
from memorylab.scenario_loader import load_scenario

SCENARIOS = Path(__file__).parents[1] / "scenarios"
HEAD = "name: u\nkind: unlearning\n"

CASES = [
    ("unknown-method", HEAD + "methods:\n  - method: forgetall\n",
     "bad.yaml:4: methods.0", "forgetall"),
    ("alpha-negative", HEAD + "methods:\n  - method: uld\n    alpha: -1\n",
     "bad.yaml:5: methods.0.alpha", "greater than 0"),
    ("alpha-too-large", HEAD + "methods:\n  - method: uld\n    alpha: 50\n",
     "bad.yaml:5: methods.0.alpha", "less than or equal to 10"),
    ("no-methods", HEAD + "methods: []\n", "bad.yaml:3: methods", "at least 1"),
    ("empty-forget-set", HEAD + "world:\n  forget: 0\nmethods:\n  - method: npo\n",
     "bad.yaml:4: world.forget", "greater than or equal to 1"),
    ("forget-overlaps-holdout", HEAD + "data:\n  source: tofu\n  holdout: forget10\nmethods:\n  - method: npo\n",
     "bad.yaml:3: data", "overlaps the holdout set"),
    ("duplicate-labels", HEAD + "methods:\n  - method: npo\n  - method: npo\n", "bad.yaml:1: ",
     "repeated: npo"),
    ("scalability-too-large", HEAD + "methods:\n  - method: npo\nscalability:\n  sizes: [2, 40]\n", "bad.yaml:1: ",
     "larger than the data"),
    ("scalability-not-increasing", HEAD + "methods:\n  - method: npo\nscalability:\n  sizes: [4, 2]\n",
     "bad.yaml:5: scalability", "increase strictly"),
    ("scalability-no-methods", HEAD + "methods:\n  - method: npo\nscalability:\n  sizes: [2, 4]\n  methods: []\n",
     "bad.yaml:7: scalability.methods", "at least 1"),
    ("uld-too-deep", HEAD + "methods:\n  - method: uld\n    layers: 4\n", "bad.yaml:1: ", "fewer than the target"),
    ("unknown-label-in-sustainability", HEAD + "methods:\n  - method: npo\nsustainability:\n  requests: 2\n"
     "  methods: [uld]\n", "bad.yaml:1: ", "unknown labels: uld"),
    ("npo-beta-zero", HEAD + "methods:\n  - method: npo\n    beta: 0\n", "bad.yaml:5: methods.0.beta",
     "greater than 0"),
    ("uld-pair-bundle-empty", HEAD + "methods:\n  - method: uld\n    placement: two_actors\n"
     "resources:\n  model: {num_cpus: 0}\n", "bad.yaml:1: ", "resources.model, which asks for nothing"),
    ("uld-pair-strategy-unknown", HEAD + "methods:\n  - method: uld\nresources:\n  uld_pair_strategy: pack\n",
     "bad.yaml:6: resources.uld_pair_strategy", "'STRICT_PACK', 'PACK', 'SPREAD' or 'STRICT_SPREAD'"),
]


@pytest.mark.parametrize("text,where,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_unlearning_settings_fail_before_any_run(tmp_path, monkeypatch, text, where, fragment):
    monkeypatch.chdir(tmp_path)
    Path("bad.yaml").write_text(text)
    result = CliRunner().invoke(app, ["validate", "bad.yaml"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith(where) and fragment in line for line in lines), lines
    assert "Traceback" not in result.output


def test_shipped_unlearning_scenarios_load():
    unlearn = load_scenario(SCENARIOS / "unlearn.yaml")
    assert [m.name for m in unlearn.methods] == ["grad_ascent", "grad_ascent_high_lr", "grad_diff", "npo",
                                                   "npo_spans", "simnpo", "rmu", "uld"]
    assert [k for a in unlearn.attacks for k in a.keys()] == ["quantize_4bit", "quantize_8bit", "relearn",
                                                              "relearn_benign", "rephrase", "in_context"]
    tofu = load_scenario(SCENARIOS / "tofu_tiny.yaml")
    assert tofu.data.source == "tofu" and {m.method for m in tofu.methods} == {
        "grad_ascent", "grad_diff", "npo", "simnpo", "uld"}
