"""The memorization report: the figures it holds (which a sweep may read; no Ray here, so checking a sweep
imports none), the quickstart's claims in words, report.md and the charts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from memorylab.metrics import catalog
from memorylab.report import bar_chart, loss_chart, markdown_table, metrics_table
from memorylab.runners.eval_drafter import speculative_markdown

METRICS = catalog.WORLD_NAMES  # the world's figures of each model
MODELS = ("target", "retrain")


def report_fields(scenario: Any) -> set[str]:
    return ({f"models.{m}.{k}" for m in MODELS for k in METRICS}
            | {f"training.{m}.{k}" for m in MODELS for k in ("steps", "final_loss")} | {"timings_s.total"})


def write_plots(report: dict[str, Any], losses: Mapping[str, Sequence[float]], out_dir: Path) -> None:
    """memorization.png (every metric, target beside retrain) and training_loss.png."""
    bar_chart(report["models"], [("verbmem_forget", "knowmem_forget", "knowmem_retain", "mia_auc_forget_holdout"),
                                 ("canary_exposure_mean",), ("ppl_holdout",)],
              out_dir / "memorization.png", f"{report['scenario']}: target vs retrain")
    loss_chart(losses, out_dir / "training_loss.png", "training loss")


def effects(models: dict[str, dict[str, float]]) -> list[str]:
    """The quickstart's claims, each stated with its numbers, so the report says whether they hold."""
    t, r = models["target"], models["retrain"]
    lines = []
    gap = t["verbmem_forget"] - r["verbmem_forget"]
    ok = t["verbmem_forget"] >= 0.5 and gap >= 0.3
    lines.append(f"- Verbatim memorization: target VerbMem {t['verbmem_forget']:.3f} vs retrain "
                 f"{r['verbmem_forget']:.3f} (gap {gap:+.3f}) — {'memorized' if ok else 'NOT clearly memorized'}.")
    gap = t["canary_exposure_mean"] - r["canary_exposure_mean"]
    lines.append(f"- Canaries: mean exposure {t['canary_exposure_mean']:.2f} bits vs {r['canary_exposure_mean']:.2f} "
                 f"(gap {gap:+.2f} bits) — {'exposed' if gap >= 3 else 'NOT clearly exposed'}.")
    gap = t["knowmem_retain"] - r["knowmem_retain"]
    lines.append(f"- Retained knowledge: KnowMem on retain {t['knowmem_retain']:.3f} vs {r['knowmem_retain']:.3f} "
                 f"(difference {gap:+.3f}): both models were trained on the retain people.")
    lines.append(f"- Membership: Min-K% AUC forget vs holdout {t['mia_auc_forget_holdout']:.3f} vs "
                 f"{r['mia_auc_forget_holdout']:.3f}; PrivLeak of the target {t['privleak']:+.1f}% "
                 "(0 means indistinguishable from never having seen the forget set; MUSE's sign: negative "
                 "while the forget set is still told apart).")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    models, timings = report["models"], report["timings_s"]
    parts = [
        f"# {report['scenario']} — memorization report", "",
        f"Seed {report['seed']}; world: {report['world']['people']} ; "
        f"trained with {report['config']['train']['steps']} steps.", "",
        "## Findings", "", *effects(models), "",
        "## Metrics", "", metrics_table(models, METRICS), "",
        "![metrics](memorization.png)", "", "![training loss](training_loss.png)", "",
        "## Training", "",
        markdown_table(["model", "documents", "parameters", "steps", "final loss"],
                       [[n, t["corpus_documents"], t["parameters"], t["steps"], t["final_loss"]]
                        for n, t in report["training"].items()]), "",
        *speculative_markdown(report.get("speculative")),
        "## Sample verbatim continuations (forget biographies)", "",
    ]
    for name, samples in report["samples"].items():
        rows = [[s["prompt"], s["truth"], s["output"]] for s in samples["verbmem_forget"]]
        parts += [f"**{name}**", "", markdown_table(["prefix", "true continuation", "greedy output"], rows), ""]
    parts += ["## Timings (s)", "", markdown_table(["stage", "seconds"], list(timings.items())), "",
              "## Versions", "", markdown_table(["package", "version"], list(report["versions"].items())), ""]
    return "\n".join(parts)
