"""One runner per scenario kind, found by the scenario's `kind` (imported only when that kind runs)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Optional

from memorylab.errors import MemorylabError

RUNNERS: dict[str, str] = {
    "memorization": "memorylab.runners.memorization",
    "unlearning": "memorylab.runners.unlearning",
    "memory_agent_eval": "memorylab.runners.memory_agent_eval",
    "continual": "memorylab.runners.continual",
}


MARKER = ".memorylab-run"  # written into every run folder; only such folders are ever deleted


def clear_run_folder(folder: Path) -> None:
    """Delete a previous run's folder, but never a folder memorylab did not create (think `--out .`)."""
    import shutil

    if any(folder.iterdir()) and not (folder / MARKER).exists():
        raise MemorylabError(f"{folder} is not empty and was not written by memorylab; "
                             "refusing to delete it (choose another --out)")
    shutil.rmtree(folder)


def run_scenario(scenario: Any, out_dir: Path, *, address: Optional[str] = None,
                 raw_config: Optional[dict] = None, scenario_path: Optional[Path] = None,
                 overwrite: bool = False, resume: bool = False, on_progress: Optional[Any] = None) -> dict[str, Any]:
    """Run a validated scenario into out_dir and return its report (also written there as report.json).

    `on_progress(partial_report, step)` receives intermediate results from runners that report them (a
    sweep's early stopping reads them); it is passed only when given, as other runners do not take it."""
    module = importlib.import_module(RUNNERS[scenario.kind])
    out_dir = Path(out_dir)
    if overwrite and not resume and out_dir.exists():
        clear_run_folder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text(f"{scenario.kind}\n")
    extra = {"on_progress": on_progress} if on_progress is not None else {}
    return module.run(scenario, out_dir, address=address, raw_config=raw_config, scenario_path=scenario_path,
                      **extra)
