"""The unlearning report's charts, and the report's files: report.json, the PNGs and report.md."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from memorylab.metrics import catalog
from memorylab.report import bar_chart, pyplot, write_json
from memorylab.runners.unlearning.report import (
    REFERENCES,
    UTILITY_KEPT,
    finite,
    forget_efficacy,
    metric_keys,
    model_order,
    plot_names,
    render_unlearning_markdown,
    rows_by_method,
    target_knowmem_by_point,
    utility,
)
from memorylab.runners.unlearning.robustness import robustness_markdown, robustness_plot


def _efficacy_utility_plot(report: Mapping[str, Any], path: Path) -> Path:
    plt = pyplot()
    models = report["models"]
    target = models.get("target", {})
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    styles = {"target": ("k", "s"), "retrain": ("tab:green", "*")}
    palette = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 2]  # green is the retrain's
    for i, name in enumerate(model_order(report)):
        x, y = forget_efficacy(models[name], target), utility(models[name], target)
        if x is None or y is None:
            continue
        colour, marker = styles.get(name, (palette[(i - 2) % len(palette)], "o"))
        size = 140 if marker == "*" else 60
        ax.scatter([x], [y], s=size, c=[colour], marker=marker, zorder=3,
                   label=f"{name} (reference)" if name in REFERENCES else name)
        ax.annotate(name, (x, y), xytext=(6, 5), textcoords="offset points", fontsize=8)
    ax.axhline(UTILITY_KEPT, color="grey", linestyle="--", linewidth=0.8, label=f"utility {UTILITY_KEPT}")
    ax.set_xlabel("forget efficacy (1 − KnowMem forget / target)")
    ax.set_ylabel("utility (KnowMem retain / target)")
    ax.set_title(f"{report['scenario']}: forgetting vs utility (top right is best)")
    ax.grid(alpha=0.3)
    ax.margins(0.12)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)  # outside the axes
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _trend_plot(report: Mapping[str, Any], section: str, axis: str, xlabel: str, path: Path) -> Path:
    plt = pyplot()
    target = report["models"].get("target", {})
    groups = rows_by_method(report[section], axis)
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8))
    for method, rows in groups.items():
        xs = [r[axis] for r in rows]
        us = [utility(r, target) for r in rows]
        ks = [finite(r.get("knowmem_forget")) for r in rows]
        axes[0].plot(xs, [math.nan if u is None else u for u in us], marker="o", label=method)
        axes[1].plot(xs, [math.nan if k is None else k for k in ks], marker="o", label=method)
    per_x = target_knowmem_by_point(report[section], axis, target)
    if any(v is not None for v in per_x.values()):
        xs = sorted(per_x)
        axes[1].plot(xs, [math.nan if per_x[x] is None else per_x[x] for x in xs], color="k", linestyle=":",
                     linewidth=0.8, label="target (same people)")
    axes[0].set_ylabel("utility (KnowMem retain / target)")
    axes[1].set_ylabel("KnowMem forget")
    for ax in axes:
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper left", ncol=min(len(labels), 6), frameon=False, fontsize=8)
    fig.suptitle(f"{report['scenario']}: {section}", y=0.93)
    fig.tight_layout(rect=(0, 0, 1, 0.86))  # the legend and title sit above both panels, clear of the data
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def unlearning_plots(report: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """efficacy_utility.png, scalability.png and sustainability.png (when measured), unlearning.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [_efficacy_utility_plot(report, out_dir / "efficacy_utility.png")]
    if report.get("scalability"):
        paths.append(_trend_plot(report, "scalability", "forget_size", "forget set size (people)",
                                 out_dir / "scalability.png"))
    if report.get("sustainability"):
        paths.append(_trend_plot(report, "sustainability", "request", "deletion request",
                                 out_dir / "sustainability.png"))
    if "robustness.png" in plot_names(report):
        paths.append(robustness_plot(report, out_dir / "robustness.png"))
    keys = metric_keys(report)
    panels = [("verbmem_forget", "knowmem_forget", "knowmem_retain", "mia_auc_forget_holdout"), ("privleak",),
              ("canary_exposure_mean",), ("ppl_holdout",)]
    if "forget_quality" in keys:
        panels.append(tuple(k for k in catalog.TOFU_NAMES if k in keys))
    models = report["models"]
    clean = {n: {k: finite(models[n].get(k)) for k in keys} for n in model_order(report)}
    # No suptitle: bar_chart's one-row legend spans the top and, with several methods, would run over it.
    paths.append(bar_chart(clean, panels, out_dir / "unlearning.png", ""))
    return paths


def write_unlearning_report(report: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """report.json, the PNGs and report.md in out_dir; returns their paths by name."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "report.json", report)
    written = {p.name: p for p in unlearning_plots(report, out_dir)}
    (out_dir / "report.md").write_text(render_unlearning_markdown(report, robustness_markdown(report)))
    return {"report.json": out_dir / "report.json", **written, "report.md": out_dir / "report.md"}
