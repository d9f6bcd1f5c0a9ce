"""`memorylab tune --resume`: the experiment's record is kept, and a resume must ask for the same sweep.

Tune restores the searcher, the scheduler and the trials it pickled; a changed space, objective, search setting
or wrapped scenario would be silently ignored (or mixed with the old trials), so it is refused, naming the first
setting that differs. The settings a resume may change are where and how it runs (ray, storage_path, the
trials' resources, the description). A resume appends when and with which versions it ran to `resumes`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

from memorylab.config_diff import differences
from memorylab.report import versions
from memorylab.scenario_loader import ScenarioError
from memorylab.tune.analysis import SWEEP_FILE

# The sweep's fields that define its trials; the others may change between an interruption and its resume.
SAME_ON_RESUME = ("seed", "space", "objectives", "num_samples", "search", "scheduler", "max_concurrent_trials")


def recorded_sweep(folder: Path) -> Optional[dict[str, Any]]:
    """The sweep.json of the experiment in `folder`, or None when there is none (or it cannot be read)."""
    try:
        record = json.loads((Path(folder) / SWEEP_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def check_same_sweep(folder: Path, sweep: Any, wrapped: Any) -> None:
    """Refuse (a ScenarioError, exit 2) a resume whose sweep differs from the one recorded in `folder`."""
    record = recorded_sweep(folder)
    if record is None:
        return  # no record to compare with: Tune's own check (can_restore) decides
    config = sweep.model_dump(mode="json")
    recorded_config = record.get("config") or {}
    compared = [(name, recorded_config.get(name), config.get(name)) for name in SAME_ON_RESUME
                if name in recorded_config]
    recorded_wrapped = (record.get("wrapped") or {}).get("config")
    if recorded_wrapped is not None:
        compared.append(("scenario", recorded_wrapped, wrapped.model_dump(mode="json")))
    for name, before, now in compared:
        found = next(differences(before, now, name), None)
        if found:
            path, was, is_now = found
            raise ScenarioError([
                f"error: --resume: {path} is {json.dumps(is_now)} but the sweep in {folder / SWEEP_FILE} ran "
                f"with {json.dumps(was)}; resume with the same settings, or start another with --out"])


def resume_record(folder: Path, fresh: dict[str, Any]) -> dict[str, Any]:
    """The record to keep on a resume: the recorded one (else `fresh`) with this resume added to `resumes`."""
    record = recorded_sweep(folder) or fresh
    record.setdefault("resumes", []).append(
        {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": versions()})
    return record
