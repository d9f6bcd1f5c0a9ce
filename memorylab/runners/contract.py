"""What every runner is given and returns: `run(scenario, out_dir, context) -> report`.

A runner (the function a kind's entry in memorylab.scenario.KINDS names) reads its validated scenario, writes
report.json, report.md and its plots into `out_dir` (already created and marked as a run folder) and returns the
report. Everything else it may need arrives in one `RunContext`, the same for every kind; a kind's shared setup
(`SharedSetup.prepare`) has the signature of `PrepareShared`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

from memorylab.progress import ProgressFn


@dataclass(frozen=True)
class RunContext:
    address: Optional[str] = None  # the Ray cluster to join; None: the scenario's ray.address, else a local Ray
    raw_config: Optional[dict] = None  # the file's mapping with its overrides, recorded in the report
    scenario_path: Optional[Path] = None  # the scenario's file: its folder resolves the relative paths it holds
    # Intermediate results, on_progress(partial_report, step), for a sweep's scheduler; `progress_figures`: the
    # figures its reader needs, so a runner may measure only those on the way (None: every figure).
    on_progress: Optional[ProgressFn] = None
    progress_figures: Optional[frozenset[str]] = None

    @property
    def base_dir(self) -> Optional[Path]:
        """The folder relative paths in the scenario are read from (None: the working directory)."""
        return None if self.scenario_path is None else Path(self.scenario_path).parent

    def without_progress(self) -> "RunContext":
        return dataclasses.replace(self, on_progress=None, progress_figures=None)


class Runner(Protocol):
    def __call__(self, scenario: Any, out_dir: Path, context: RunContext) -> dict[str, Any]: ...


class PrepareShared(Protocol):
    """Trains into `folder` what every trial of a sweep would train alike; returns the dotted settings that make a
    trial use it instead (memorylab.scenario.SharedSetup)."""

    def __call__(self, scenario: Any, folder: Path, scenario_path: Optional[Path]) -> dict[str, Any]: ...
