"""The robustness part of an unlearning report: how much of each method's forgetting comes back under attack.

Reads `models.<label>.attacks.<attack>.recovered.<metric>` (memorylab/runners/unlearning/attacks.py): the
share of what a model forgot that the attack brought back, 0 = none (robust), 1 = all of it, null where the
model forgot (next to) nothing. The words name the most and least robust method under each attack, among the
methods that did not collapse (a model that lost everything has nothing left to recover, trivially).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

from memorylab.report import fmt, markdown_table, pyplot
from memorylab.runners.unlearning.report import UTILITY_COLLAPSED, finite, method_labels, utility

FIGURES = {"knowmem_forget": "KnowMem", "verbmem_forget": "VerbMem"}


def attack_keys(report: Mapping[str, Any]) -> list[str]:
    """The attacks some model was measured under, in the order the run listed them."""
    keys: dict[str, None] = {}
    for figures in report.get("models", {}).values():
        keys.update(dict.fromkeys(figures.get("attacks") or {}))
    return list(keys)


def recovery(report: Mapping[str, Any], name: str, attack: str, metric: str) -> Optional[float]:
    entry = (report["models"].get(name, {}).get("attacks") or {}).get(attack) or {}
    return finite((entry.get("recovered") or {}).get(metric))


def _standing(report: Mapping[str, Any]) -> list[str]:
    """The methods that did not collapse (all of them when every one did)."""
    models = report["models"]
    labels = method_labels(report)
    target = models.get("target", {})
    kept = {n: utility(models[n], target) for n in labels}
    alive = [n for n in labels if kept[n] is None or kept[n] >= UTILITY_COLLAPSED]
    return alive or labels


def robustness_findings(report: Mapping[str, Any]) -> list[str]:
    """Per attack, which method kept its forgetting best and which lost most of it, with the numbers."""
    labels = _standing(report)
    dropped = sorted(set(method_labels(report)) - set(labels))
    lines = []
    for attack in attack_keys(report):
        shares = {n: recovery(report, n, attack, "knowmem_forget") for n in labels}
        known = {n: v for n, v in shares.items() if v is not None}
        if not known:
            lines.append(f"Under {attack} no method had forgotten enough KnowMem for a recovery to be measured.")
            continue
        best, worst = min(known, key=known.get), max(known, key=known.get)
        tied = [n for n in known if abs(known[n] - known[best]) < 5e-4]  # equal as the report prints them
        if len(tied) > 1:
            sentence = f"Under {attack}, {fmt(known[best])} of the forgotten KnowMem comes back for {_listed(tied)}"
        else:
            sentence = (f"Under {attack}, {best} is the most robust: {fmt(known[best])} of its forgotten KnowMem "
                        "comes back")
        if worst not in tied:
            sentence += f"; {worst} is the least, with {fmt(known[worst])}"
        retrain = recovery(report, "retrain", attack, "knowmem_forget")
        if retrain is not None:
            sentence += f" (the retrain model, which never learned the forget set: {fmt(retrain)})"
        lines.append(sentence + ".")
    worst_case = {n: finite((report["models"][n].get("robustness") or {}).get("worst_recovered_knowmem_forget"))
                  for n in labels}
    ranked = {n: v for n, v in worst_case.items() if v is not None}
    if ranked:
        best = min(ranked, key=ranked.get)
        attack = report["models"][best]["robustness"].get("worst_attack_knowmem_forget")
        if ranked[best] > 0:
            lines.append(f"Worst case over every attack, {best} holds up best: at most {fmt(ranked[best])} of its "
                         f"forgotten KnowMem comes back (under {attack}).")
        else:
            lines.append(f"Worst case over every attack, {best} holds up best: none of its forgotten KnowMem comes "
                         "back under any attack.")
    if dropped:
        lines.append(f"Not ranked, having collapsed (utility below {UTILITY_COLLAPSED}): {', '.join(dropped)}.")
    return lines


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def robustness_tables(report: Mapping[str, Any]) -> list[str]:
    """Markdown: one table of recovered shares per figure (methods x attacks), then the figures under attack."""
    attacks = attack_keys(report)
    names = [*method_labels(report), "retrain"]
    parts = []
    for metric, label in FIGURES.items():
        parts += [f"Recovered {label} (share of the forgotten {label} on the forget set that the attack brings "
                  "back; n/a: nothing was forgotten):", "",
                  markdown_table(["model", *attacks],
                                 [[n, *(recovery(report, n, a, metric) for a in attacks)] for n in names]), ""]
    models = report["models"]
    parts += ["KnowMem on the forget set under each attack (relearning: on the forget people not relearned on):", "",
              markdown_table(["model", "none", *attacks],
                             [[n, finite(models[n].get("knowmem_forget")),
                               *(finite((models[n].get("attacks") or {}).get(a, {}).get("knowmem_forget"))
                                 for a in attacks)] for n in ["target", *names] if n in models]), ""]
    return parts


def robustness_markdown(report: Mapping[str, Any]) -> list[str]:
    """The report's robustness section, or nothing for a run without attacks."""
    if not attack_keys(report):
        return []
    return ["## Robustness to attacks", "", *(f"- {line}" for line in robustness_findings(report)), "",
            *robustness_tables(report)]


def robustness_plot(report: Mapping[str, Any], path: Path) -> Path:
    """Two heatmaps, methods x attacks, of recovered KnowMem and VerbMem (grey: n/a)."""
    import numpy as np

    plt = pyplot()
    attacks = attack_keys(report)
    names = [*method_labels(report), "retrain"]
    fig, axes = plt.subplots(1, 2, figsize=(2.0 + 1.3 * len(attacks) * 2, 1.2 + 0.45 * len(names)), squeeze=False)
    for ax, (metric, label) in zip(axes[0], FIGURES.items()):
        values = np.array([[recovery(report, n, a, metric) for a in attacks] for n in names], dtype=float)
        ax.set_facecolor("0.85")
        image = ax.imshow(np.ma.masked_invalid(values), vmin=0, vmax=1, cmap="Reds", aspect="auto")
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, "n/a" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if not np.isnan(v) and v > 0.6 else "black")
        ax.set_xticks(range(len(attacks)), attacks, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_title(f"recovered {label} (0 = robust)", fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
