"""The robustness section of the unlearning report, from a hand-built report: the words name the most and least
robust method under each attack from the numbers, leave out a collapsed method, and the tables and chart show
n/a where nothing was forgotten."""

import json

import pytest

from memorylab.runners.unlearning.attacks import worst_case
from memorylab.runners.unlearning.plots import write_unlearning_report
from memorylab.runners.unlearning.robustness import attack_keys, robustness_findings, robustness_markdown


def attacked(kf, kr, recovered: dict[str, tuple]):
    """A model's figures with, per attack, (recovered KnowMem, recovered VerbMem)."""
    entries = {a: {"knowmem_forget": 0.5, "verbmem_forget": 0.4, "unattacked": {"knowmem_forget": kf},
                   "recovered": {"knowmem_forget": k, "verbmem_forget": v}} for a, (k, v) in recovered.items()}
    return {"knowmem_forget": kf, "verbmem_forget": 0.1, "knowmem_retain": kr, "attacks": entries,
            "robustness": worst_case(entries)}


@pytest.fixture
def report():
    return {
        "scenario": "robust-test", "kind": "unlearning", "seed": 0, "data": {"source": "world"},
        "models": {
            "target": attacked(1.0, 1.0, {"quantize_4bit": (None, None), "relearn": (None, None)}),
            "retrain": attacked(0.05, 1.0, {"quantize_4bit": (0.0, 0.0), "relearn": (0.05, 0.1)}),
            "npo": attacked(0.2, 0.95, {"quantize_4bit": (0.6, 0.5), "relearn": (0.9, 0.7)}),
            "rmu": attacked(0.0, 0.99, {"quantize_4bit": (0.1, 0.0), "relearn": (0.3, 0.2)}),
            "ga_high": attacked(0.0, 0.1, {"quantize_4bit": (0.0, 0.0), "relearn": (0.0, 0.0)}),  # collapsed
        },
        "methods": {"npo": {}, "rmu": {}, "ga_high": {}},
    }


def test_findings_name_the_robust_and_the_fragile(report):
    lines = robustness_findings(report)
    assert lines[0].startswith("Under quantize_4bit, rmu is the most robust: 0.100 of its forgotten KnowMem comes "
                               "back; npo is the least, with 0.600 (the retrain model")
    assert lines[1].startswith("Under relearn, rmu is the most robust: 0.300")
    assert "rmu holds up best: at most 0.300" in lines[2] and "(under relearn)" in lines[2]
    assert "ga_high" in lines[3] and "collapsed" in lines[3]
    assert not any("ga_high is the most robust" in line for line in lines)


def test_ties_are_named_together(report):
    report["models"]["npo"]["attacks"]["quantize_4bit"]["recovered"]["knowmem_forget"] = 0.1
    lines = robustness_findings(report)
    assert lines[0].startswith("Under quantize_4bit, 0.100 of the forgotten KnowMem comes back for npo and rmu (")


def test_worst_case_is_the_highest_recovery(report):
    assert report["models"]["npo"]["robustness"] == {
        "worst_recovered_knowmem_forget": 0.9, "worst_attack_knowmem_forget": "relearn",
        "worst_recovered_verbmem_forget": 0.7, "worst_attack_verbmem_forget": "relearn"}
    assert report["models"]["target"]["robustness"]["worst_recovered_knowmem_forget"] is None


def test_tables_chart_and_none_without_attacks(report, tmp_path):
    md = "\n".join(robustness_markdown(report))
    assert "| model | quantize_4bit | relearn |" in md
    assert "| npo | 0.6" in md and "| retrain |" in md
    written = write_unlearning_report(report, tmp_path)
    assert written["robustness.png"].read_bytes().startswith(b"\x89PNG")
    assert "## Robustness to attacks" in written["report.md"].read_text()
    assert attack_keys(json.loads(written["report.json"].read_text())) == ["quantize_4bit", "relearn"]
    plain = {**report, "models": {n: {k: v for k, v in m.items() if k not in ("attacks", "robustness")}
                                  for n, m in report["models"].items()}}
    assert robustness_markdown(plain) == []
