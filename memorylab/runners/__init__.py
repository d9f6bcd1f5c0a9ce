"""One runner per scenario kind, each in its own folder (setup, run, report), found through the kind's entry in
memorylab.scenario.KINDS and imported only when that kind runs; what a runner is given is runners/contract.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memorylab.runners.contract import RunContext
from memorylab.runners.run_folder import marked_folder
from memorylab.scenario import kind_of


def run_scenario(scenario: Any, out_dir: Path, context: RunContext = RunContext(), *, overwrite: bool = False,
                 resume: bool = False) -> dict[str, Any]:
    """Run a validated scenario into out_dir and return its report (also written there as report.json).

    `overwrite` sets a previous run in the folder aside until this one has written (then deletes it); `resume`
    keeps what the folder holds (finished models, checkpoints). Intermediate results reach
    `context.on_progress` only from a kind whose entry says it reports them."""
    kind = kind_of(scenario)
    if kind.runner is None:
        raise ValueError(f"a {kind.name} scenario is not run but used with `memorylab {kind.command}`")
    if not kind.reports_progress:
        context = context.without_progress()
    with marked_folder(Path(out_dir), kind.name, overwrite=overwrite and not resume) as folder:
        return kind.load("runner")(scenario, folder, context)


__all__ = ["RunContext", "run_scenario"]
