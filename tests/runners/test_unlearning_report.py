"""The unlearning report from a hand-built report dict: findings name the right winners, one table row per
model, valid PNGs, plots skipped when their section is empty, TOFU columns when present."""

import copy
import json

import pytest

from memorylab.metrics import catalog
from memorylab.runners.unlearning.plots import unlearning_plots, write_unlearning_report
from memorylab.runners.unlearning.report import (
    findings,
    forget_efficacy,
    render_unlearning_markdown,
    target_knowmem_by_point,
    utility,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def metrics(verb, kf, kr, privleak, auc=0.6, mia_loss=None, **extra):
    return {"verbmem_forget": verb, "knowmem_forget": kf, "knowmem_retain": kr, "mia_auc_forget_holdout": auc,
            "privleak": privleak, "canary_exposure_mean": 3.0, "ppl_holdout": 40.0, "mia_auc_min_k_pp": auc,
            "mia_auc_loss": mia_loss, "mia_auc_zlib": auc, **extra}


def row(**kw):
    return kw


@pytest.fixture
def report():
    return {
        "scenario": "unlearn-test", "kind": "unlearning", "config": {}, "seed": 7,
        "versions": {"python": "3.x", "torch": "2.x"},
        "timings_s": {"train": 12.5, "unlearn": 3.25, "total": 20.0},
        "data": {"source": "world", "forget_people": 10, "retain_people": 40},
        "models": {
            "target": metrics(0.90, 0.80, 0.70, 60.0, auc=0.9, mia_loss=0.9),
            "retrain": metrics(0.20, 0.10, 0.68, 0.0, auc=0.56, mia_loss=0.55),
            # Forgets everything, and everything else with it: the gradient-ascent collapse.
            "grad_ascent": metrics(0.01, 0.00, 0.10, -45.0, auc=0.3, mia_loss=float("nan")),
            "npo": metrics(0.30, 0.35, 0.56, 20.0, auc=0.67, mia_loss=0.6),
            # Good trade-off: forgets most, keeps utility >= 0.9, PrivLeak near 0.
            "uld": metrics(0.15, 0.16, 0.67, -3.0, auc=0.54, mia_loss=None),
        },
        "methods": {
            "grad_ascent": {"method": "grad_ascent", "hparams": {"lr": 1e-4, "epochs": 5}, "seconds": 1.5,
                            "final_loss": -30.2},
            "npo": {"method": "npo", "hparams": {"lr": 1e-5, "beta": 0.1}, "seconds": 2.0, "final_loss": 0.4},
            "uld": {"method": "uld", "hparams": {"alpha": 0.75, "layers": 2}, "seconds": 0.8, "final_loss": None},
        },
        "scalability": [
            row(method="uld", forget_size=5, **metrics(0.1, 0.15, 0.69, -1.0)),
            row(method="uld", forget_size=20, **metrics(0.2, 0.18, 0.67, -4.0)),
            row(method="grad_ascent", forget_size=20, **metrics(0.0, 0.0, 0.05, -50.0)),
            row(method="grad_ascent", forget_size=5, **metrics(0.05, 0.05, 0.35, -30.0)),
        ],
        "sustainability": [
            row(method="npo", request=1, forgotten=5, **metrics(0.3, 0.3, 0.63, 10.0)),
            row(method="npo", request=2, forgotten=10, **metrics(0.3, 0.3, 0.49, 12.0)),
            row(method="npo", request=3, forgotten=15, **metrics(0.3, 0.3, 0.35, 15.0)),
        ],
    }


def test_efficacy_and_utility_guard_zero_and_missing():
    target = {"knowmem_forget": 0.8, "knowmem_retain": 0.5}
    assert forget_efficacy({"knowmem_forget": 0.2}, target) == pytest.approx(0.75)
    assert utility({"knowmem_retain": 0.45}, target) == pytest.approx(0.9)
    zero = {"knowmem_forget": 0.0, "knowmem_retain": 0.0}
    assert forget_efficacy({"knowmem_forget": 0.2}, zero) is None
    assert utility({"knowmem_retain": 0.2}, zero) is None
    assert forget_efficacy({"knowmem_forget": None}, target) is None
    assert utility({"knowmem_retain": float("nan")}, target) is None


def test_findings_name_the_winners(report):
    lines = findings(report)
    text = "\n".join(lines)

    def line(start):
        hits = [s for s in lines if s.startswith(start)]
        assert hits, f"no finding starts with {start!r}:\n{text}"
        return hits[0]

    # grad_ascent forgets everything by collapsing; the forgetting winners are chosen among the others.
    assert "did not collapse" in line("uld forgets the most knowledge")
    assert "0.160" in line("uld forgets the most knowledge")
    assert line("uld reproduces the least forget text verbatim")
    assert not any(s.startswith("grad_ascent forgets") for s in lines)
    assert "-3.0%" in line("uld has the PrivLeak closest to 0")
    assert "0.670" in line("uld keeps the most utility")
    best = line("Best trade-off: uld")
    assert "0.800" in best  # efficacy 1 - 0.16/0.80
    collapsed = line("grad_ascent collapsed")
    assert "gradient-ascent collapse" in collapsed and "0.143" in collapsed  # 0.10 / 0.70
    assert not any(s.startswith(("npo collapsed", "uld collapsed")) for s in lines)
    assert "forget quality" not in text  # not a TOFU run
    scal = line("Scalability — grad_ascent")
    assert "5 forget people" in scal and "20 forget people" in scal and "degrades" in scal
    assert "holds up" in line("Scalability — uld")
    sus = line("Sustainability — npo")
    assert "request 1" in sus and "request 3" in sus and "15 people forgotten" in sus and "degrades" in sus


def test_findings_say_when_no_method_keeps_utility(report):
    report["models"]["uld"]["knowmem_retain"] = 0.5
    report["models"]["npo"]["knowmem_retain"] = 0.55
    text = "\n".join(findings(report))
    assert "No method keeps utility >= 0.9" in text and "npo" in text
    assert "Best trade-off" not in text


def test_collapse_of_a_grad_ascent_variant_is_named(report):
    report["models"]["grad_ascent_high_lr"] = metrics(0.0, 0.0, 0.05, -60.0)
    report["methods"]["grad_ascent_high_lr"] = {"method": "grad_ascent", "hparams": {"lr": 1e-3}, "seconds": 1.0,
                                                "final_loss": None}
    lines = findings(report)
    assert any(s.startswith("grad_ascent_high_lr collapsed") and "gradient-ascent collapse" in s for s in lines)


def test_markdown_has_one_row_per_model(report):
    md = render_unlearning_markdown(report)
    table = md.split("## Models")[1].split("##")[0]
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and not ln.startswith("| model")]
    assert [r.split("|")[1].strip() for r in rows] == ["target", "retrain", "grad_ascent", "npo", "uld"]
    header = [ln for ln in table.splitlines() if ln.startswith("| model")][0]
    for key in ("forget efficacy", "utility", *catalog.WORLD_NAMES):
        assert key in header
    assert "truth_ratio_forget" not in md
    assert "n/a" in rows[4]  # uld's mia_auc_loss is None
    assert "n/a" in rows[2]  # grad_ascent's is NaN
    for section in ("## Findings", "## Methods", "## Scalability", "## Sustainability", "## Timings",
                    "## Versions", "alpha=0.75", "![efficacy_utility](efficacy_utility.png)",
                    "![scalability](scalability.png)", "![sustainability](sustainability.png)",
                    "![unlearning](unlearning.png)", "- Best trade-off: uld"):
        assert section in md, section


def test_plots_are_valid_pngs(report, tmp_path):
    paths = unlearning_plots(report, tmp_path)
    assert sorted(p.name for p in paths) == ["efficacy_utility.png", "scalability.png", "sustainability.png",
                                             "unlearning.png"]
    for p in paths:
        assert p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 5000


def test_empty_sections_skip_their_plots_and_tables(report, tmp_path):
    report["scalability"], report["sustainability"] = [], []
    paths = unlearning_plots(report, tmp_path)
    assert sorted(p.name for p in paths) == ["efficacy_utility.png", "unlearning.png"]
    assert not (tmp_path / "scalability.png").exists() and not (tmp_path / "sustainability.png").exists()
    md = render_unlearning_markdown(report)
    assert "## Scalability" not in md and "scalability.png" not in md and "sustainability.png" not in md
    assert not any(s.startswith(("Scalability", "Sustainability")) for s in findings(report))


def test_tofu_keys_appear_when_present(report, tmp_path):
    report["data"] = {"source": "tofu", "forget_split": "forget01"}
    tofu = {"target": (0.4, 0.6, 1e-5), "retrain": (0.7, 0.6, 1.0), "grad_ascent": (0.9, 0.2, 1e-3),
            "npo": (0.6, 0.55, 0.2), "uld": (0.65, 0.58, 0.6)}
    for name, (tf, tr, fq) in tofu.items():
        report["models"][name].update(truth_ratio_forget=tf, truth_ratio_retain=tr, forget_quality=fq)
    md = render_unlearning_markdown(report)
    header = [ln for ln in md.splitlines() if ln.startswith("| model")][0]
    for key in ("truth_ratio_forget", "truth_ratio_retain", "forget_quality"):
        assert key in header
    lines = findings(report)
    assert any(s.startswith("uld has the highest TOFU forget quality: 0.6") for s in lines)
    assert "unlearning.png" in [p.name for p in unlearning_plots(report, tmp_path)]


def test_report_survives_a_json_round_trip(report, tmp_path):
    written = write_unlearning_report(report, tmp_path)
    assert {"report.json", "report.md", "efficacy_utility.png", "unlearning.png"} <= set(written)
    again = json.loads((tmp_path / "report.json").read_text())
    assert again["models"]["grad_ascent"]["mia_auc_loss"] is None  # NaN became null
    assert render_unlearning_markdown(again) == (tmp_path / "report.md").read_text()


def test_no_methods_is_said_plainly(report):
    only_refs = copy.deepcopy(report)
    only_refs["models"] = {k: v for k, v in report["models"].items() if k in ("target", "retrain")}
    only_refs["methods"], only_refs["scalability"], only_refs["sustainability"] = {}, [], []
    assert findings(only_refs) == ["No unlearning method was run: only the reference models are reported."]
    assert "| target |" in render_unlearning_markdown(only_refs)


def test_a_trend_point_compares_with_the_target_on_its_own_forget_subset(report):
    report["scalability"][0]["target_knowmem_forget"] = 0.5  # uld at 5 people: 0.15 of the target's 0.5 there
    table = render_unlearning_markdown(report).split("## Scalability")[1].split("##")[0]
    uld_5 = [ln for ln in table.splitlines() if ln.startswith("| uld | 5 |")][0]
    assert "| 0.700 |" in uld_5  # 1 - 0.15 / 0.5, not 1 - 0.15 / 0.80 (the whole forget set's)
    uld_20 = [ln for ln in table.splitlines() if ln.startswith("| uld | 20 |")][0]
    assert "| 0.775 |" in uld_20  # no subset figure recorded: the whole set's, 1 - 0.18 / 0.80
    # The plot's target line reads the same reference at each size.
    reference = target_knowmem_by_point(report["scalability"], "forget_size", report["models"]["target"])
    assert reference == {5: 0.5, 20: 0.8}


def test_the_privleak_finding_reads_the_sign_as_muse_does(report):
    def privleak_line():
        return [s for s in findings(report) if s.startswith("uld has the PrivLeak closest to 0")][0]

    assert "under-unlearning" in privleak_line()  # -3.0: the forget set still told apart a little
    report["models"]["uld"]["privleak"] = 3.0
    assert "over-unlearning" in privleak_line()


def test_a_span_scoped_method_is_compared_on_the_text_around_the_values(report):
    for name, ppl in (("target", 12.0), ("npo", 30.0), ("uld", 14.0), ("grad_ascent", 900.0)):
        report["models"][name]["ppl_forget_context"] = ppl
    report["models"]["npo_spans"] = metrics(0.1, 0.2, 0.69, -5.0, ppl_forget_context=13.0)
    report["methods"]["npo_spans"] = {"method": "npo", "hparams": {"scope": "spans"}, "seconds": 1.0}
    line = next(s for s in findings(report) if s.startswith("npo_spans unlearned"))
    assert "perplexity 13.000 (target 12.000; on whole documents: grad_ascent 900.000, npo 30.000, uld 14.000)" in line
