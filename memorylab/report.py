"""Reports: report.json (figures), report.md (tables) and PNG plots, written into the run folder.

Every report records the scenario's config, the package versions and the seed, so a number in a report can
be traced back to exactly what produced it.
"""

from __future__ import annotations

import json
import math
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

from memorylab.hidden_keys import hide_keys

PACKAGES = ("memorylab", "torch", "transformers", "tokenizers", "ray", "peft", "lancedb", "numpy",
            "scikit-learn", "scipy", "rouge-score", "faker", "sentence-transformers", "optuna")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _json_safe(value: Any) -> Any:
    """NaN and infinities are not JSON: they become null (with the figure's meaning kept in the .md)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _json_safe(value.item())
    return value


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    # Keys hidden here, where every report passes: a raw config or an inline agent can hold serve.api_keys.
    tmp.write_text(json.dumps(_json_safe(hide_keys(data)), indent=2, allow_nan=False) + "\n")
    tmp.replace(path)  # a reader never sees a half-written report


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return fmt(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def metrics_table(models: Mapping[str, Mapping[str, float]], keys: Sequence[str]) -> str:
    """One row per metric, one column per model."""
    names = list(models)
    return markdown_table(["metric", *names], [[k, *(models[n].get(k) for n in names)] for k in keys])


def pyplot():
    """matplotlib's pyplot on the Agg backend: reports are drawn to files, on machines without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(models: Mapping[str, Mapping[str, float]], panels: Sequence[Sequence[str]], path: Path,
              title: str) -> Path:
    """Grouped bars per model, one panel per group of metrics that share a scale."""
    plt = pyplot()

    names = list(models)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    width = 0.8 / len(names)
    for ax, keys in zip(axes[0], panels):
        for i, name in enumerate(names):
            values = [models[name].get(k) or 0.0 for k in keys]
            ax.bar([x + i * width for x in range(len(keys))], values, width, label=name)
        ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(keys))])
        ax.set_xticklabels(keys, rotation=20, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper left", ncol=len(names), frameon=False)  # clear of every bar
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def loss_chart(curves: Mapping[str, Sequence[float]], path: Path, title: str) -> Path:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, losses in curves.items():
        ax.plot(range(1, len(losses) + 1), losses, label=name, linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
