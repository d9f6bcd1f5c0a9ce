"""`memorylab analyze DIR`: a sweep's trials as a table, the best trial per objective, the Pareto front.

Reads the experiment through Ray Tune's ResultGrid (no Ray cluster needed) and the objectives' directions
from sweep.json, which `memorylab tune` writes before the first trial starts, so an interrupted experiment
can be analysed too.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from memorylab.errors import MemorylabError
from memorylab.report import fmt, markdown_table, pyplot

SWEEP_FILE = "sweep.json"


@dataclass
class Trial:
    name: str
    status: str
    params: dict[str, Any]
    objectives: dict[str, float]  # NaN where the trial gave no value
    work_s: Optional[float]
    final: bool  # False when the trial stopped early (or failed) before its final report

    def complete(self) -> bool:
        return all(math.isfinite(v) for v in self.objectives.values())


def dominates(a: Sequence[float], b: Sequence[float], modes: Sequence[str]) -> bool:
    """a is at least as good as b on every objective and better on one."""
    signed = [(x, y) if m == "max" else (-x, -y) for x, y, m in zip(a, b, modes)]
    return all(x >= y for x, y in signed) and any(x > y for x, y in signed)


def pareto_front(trials: list[Trial], modes: dict[str, str]) -> list[Trial]:
    names = list(modes)
    done = [t for t in trials if t.complete()]
    points = {t.name: [t.objectives[n] for n in names] for t in done}
    return [t for t in done
            if not any(dominates(points[o.name], points[t.name], [modes[n] for n in names]) for o in done)]


def load_trials(folder: Path) -> tuple[dict, list[Trial]]:
    """The sweep record and every trial of the experiment in `folder`."""
    folder = Path(folder)
    record_file = folder / SWEEP_FILE
    if not record_file.exists():
        raise MemorylabError(f"{folder} is not a sweep experiment (no {SWEEP_FILE}); "
                             "run one with: memorylab tune FILE --out DIR")
    try:
        record = json.loads(record_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MemorylabError(f"{record_file} is damaged, not a sweep record memorylab can read ({e})") from None
    if not isinstance(record, dict):
        raise MemorylabError(f"{record_file} is damaged: expected a JSON object, got {type(record).__name__}")
    from ray.tune import ExperimentAnalysis, ResultGrid

    try:
        grid = ResultGrid(ExperimentAnalysis(str(folder.absolute())))
    except Exception as e:  # Tune raises several kinds for a missing or half-written state file
        raise MemorylabError(f"cannot read the Tune experiment in {folder}: {str(e).splitlines()[0]}") from e
    space = list(record["config"]["space"])
    names = [o["name"] for o in record["config"]["objectives"]]
    trials = []
    for result in grid:
        metrics = result.metrics or {}
        config = result.config or {}
        status = "ERROR" if result.error is not None else ("DONE" if metrics.get("final") else "STOPPED")
        trials.append(Trial(
            name=str(metrics.get("trial_id") or Path(result.path).name), status=status, params={p: config.get(p) for p in space},
            objectives={n: _number(metrics.get(n)) for n in names}, work_s=metrics.get("trial_work_s"),
            final=bool(metrics.get("final"))))
    trials.sort(key=lambda t: t.name)
    return record, trials


def _number(value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x


def modes_of(record: dict) -> dict[str, str]:
    return {o["name"]: ("max" if o.get("maximize") is not None else "min") for o in record["config"]["objectives"]}


def ranked(trials: list[Trial], name: str, mode: str) -> list[Trial]:
    """Trials by one objective, best first; trials without a value last."""
    sign = -1 if mode == "max" else 1
    return sorted(trials, key=lambda t: (not math.isfinite(t.objectives[name]),
                                         sign * t.objectives[name] if math.isfinite(t.objectives[name]) else 0))


def _param(value: Any) -> Any:
    """A swept value as written in a table: 0.0002 stays 0.0002 (fmt would round it to 0.000)."""
    return f"{value:.4g}" if isinstance(value, float) else value


def _rows(trials: list[Trial], space: list[str], names: list[str]) -> list[list[Any]]:
    return [[t.name, t.status, *(_param(t.params[p]) for p in space), *(t.objectives[n] for n in names),
             t.work_s] for t in trials]


def analyze_experiment(folder: Path, top: int = 10) -> str:
    """Write analysis.csv, analysis.md and pareto.png into `folder`; return the top rows as a text table."""
    folder = Path(folder)
    record, trials = load_trials(folder)
    if not trials:
        raise MemorylabError(f"{folder} holds no trials yet")
    modes = modes_of(record)
    names, space = list(modes), list(record["config"]["space"])
    header = ["trial", "status", *space, *(f"{n} ({modes[n]})" for n in names), "work_s"]
    first = ranked(trials, names[0], modes[names[0]])
    with open(folder / "analysis.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "status", *space, *names, "work_s"])
        writer.writerows(_rows(trials, space, names))
    front = pareto_front(trials, modes)
    best = [[n, modes[n], *(_rows([t], space, names)[0])] for n in names
            for t in ranked(trials, n, modes[n])[:1] if math.isfinite(t.objectives[n])]
    wrapped = record.get("wrapped", {}).get("kind", "?")
    md = [f"# Sweep {record['scenario']}", "",
          f"{len(trials)} trials of a {wrapped} scenario; search {record['config']['search']['algorithm']} "
          f"(seed {record.get('searcher_seed')}), scheduler {record['config']['scheduler']['name']}; "
          f"{sum(t.status == 'DONE' for t in trials)} finished, {sum(t.status == 'STOPPED' for t in trials)} "
          f"stopped early, {sum(t.status == 'ERROR' for t in trials)} failed.", "",
          "## Best trial per objective", "", markdown_table(["objective", "mode", *header], best), "",
          "## Pareto front", "",
          "Trials no other trial beats on every objective at once." if len(names) > 1 else
          "With one objective the front is the best trial.", "",
          markdown_table(header, _rows(ranked(front, names[0], modes[names[0]]), space, names)), "",
          "## All trials", "", markdown_table(header, _rows(first, space, names)), "",
          "![pareto](pareto.png)", ""]
    (folder / "analysis.md").write_text("\n".join(md))
    _plot(trials, front, modes, space, folder / "pareto.png", record["scenario"])
    return _text_table(header, _rows(first[:top], space, names))


def _plot(trials: list[Trial], front: list[Trial], modes: dict[str, str], space: list[str], path: Path,
          title: str) -> None:
    plt = pyplot()
    names = list(modes)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    done = [t for t in trials if t.complete()]
    if len(names) >= 2:
        x, y = names[0], names[1]
        ax.scatter([t.objectives[x] for t in done], [t.objectives[y] for t in done], s=22, alpha=0.6,
                   label="trials")
        line = sorted(front, key=lambda t: t.objectives[x])
        ax.plot([t.objectives[x] for t in line], [t.objectives[y] for t in line], "o-", color="C3",
                label="Pareto front")
        ax.set_xlabel(f"{x} ({modes[x]})")
        ax.set_ylabel(f"{y} ({modes[y]})")
    else:
        name = names[0]
        numeric = next((p for p in space if all(isinstance(t.params[p], (int, float)) for t in done)), None)
        xs = [t.params[numeric] for t in done] if numeric else list(range(len(done)))
        ax.scatter(xs, [t.objectives[name] for t in done], s=22, label="trials")
        for t in front:
            ax.scatter([t.params[numeric] if numeric else done.index(t)], [t.objectives[name]], s=60,
                       color="C3", label="best")
        ax.set_xlabel(numeric or "trial")
        ax.set_ylabel(f"{name} ({modes[name]})")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{title}: {len(done)} trials")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _text_table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[fmt(v, 4) for v in row] for row in rows]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in cells)
