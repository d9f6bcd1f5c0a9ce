"""The unlearning scenario end to end, at reduced size: ULD forgets the forget people and keeps the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memorylab.runners import run_scenario
from memorylab.scenario_loader import load_scenario

pytestmark = pytest.mark.e2e
UNLEARN = Path(__file__).parents[2] / "scenarios" / "unlearn.yaml"

# The claim is about the quickstart-sized world, so the world and model stay as in unlearn.yaml (its
# ULD settings were tuned there; on a 3-person world the MIA figures are too coarse to compare methods).
# What is reduced: two methods, and one small scalability and sustainability run each. Every attack of
# unlearn.yaml runs on every model, so the same run checks what the attacks must show.
REDUCED = ["methods=[{method: grad_ascent, lr: 2.0e-4, steps: 30},"
           " {method: uld, layers: 1, alpha: 1.75, lr: 2.0e-3, steps: 200}]",
           "scalability={sizes: [2, 6], methods: [uld]}", "sustainability={requests: 2, methods: [grad_ascent]}"]


def test_uld_forgets_without_losing_utility(tmp_path):
    report = run_scenario(load_scenario(UNLEARN, REDUCED), tmp_path / "run")
    models = report["models"]
    target, uld, ga = models["target"], models["uld"], models["grad_ascent"]
    assert uld["knowmem_forget"] <= 0.5 * target["knowmem_forget"]
    assert uld["knowmem_retain"] >= 0.9 * target["knowmem_retain"]
    assert abs(uld["privleak"]) < abs(ga["privleak"])

    assert [(e["method"], e["forget_size"]) for e in report["scalability"]] == [("uld", 2), ("uld", 6)]
    assert report["scalability"][-1]["knowmem_forget"] == uld["knowmem_forget"]  # size 6 is the main run
    assert [(e["method"], e["request"], e["forgotten"]) for e in report["sustainability"]] == [
        ("grad_ascent", 1, 3), ("grad_ascent", 2, 6)]
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert set(saved["models"]) == {"target", "retrain", "grad_ascent", "uld"}
    for name in ("report.md", "efficacy_utility.png", "scalability.png", "sustainability.png", "robustness.png"):
        assert (tmp_path / "run" / name).exists(), name
    _attacks_show_what_they_must(saved, (tmp_path / "run" / "report.md").read_text())


ATTACKS = {"quantize_4bit", "quantize_8bit", "relearn", "relearn_benign", "rephrase", "in_context"}


def _attacks_show_what_they_must(report, markdown):
    models = report["models"]
    for name, figures in models.items():
        assert set(figures["attacks"]) == ATTACKS, name
        for attack, entry in figures["attacks"].items():
            assert set(entry["recovered"]) == {"knowmem_forget", "verbmem_forget"}, (name, attack)
    # The target forgot nothing: no share of it can come back.
    assert all(e["recovered"]["knowmem_forget"] is None for e in models["target"]["attacks"].values())

    def raised(name):  # what relearning on one forget person's documents adds to KnowMem on the other five
        entry = models[name]["attacks"]["relearn"]
        return entry["knowmem_forget"] - entry["unattacked"]["knowmem_forget"]

    # Lightly unlearned by gradient ascent, the knowledge of the people never relearned on comes back; the retrain
    # model, which never learned them, gains far less from the same ten documents.
    assert raised("grad_ascent") >= 0.2
    assert raised("retrain") <= 0.5 * raised("grad_ascent")
    assert models["grad_ascent"]["attacks"]["relearn"]["recovered"]["knowmem_forget"] >= 0.2
    # 8-bit rounding leaves the target's figures as they were.
    for metric in ("knowmem_forget", "verbmem_forget"):
        assert abs(models["target"]["attacks"]["quantize_8bit"][metric] - models["target"][metric]) <= 0.02
    assert models["grad_ascent"]["robustness"]["worst_attack_knowmem_forget"] in ATTACKS
    assert "## Robustness to attacks" in markdown and "most robust" in markdown
