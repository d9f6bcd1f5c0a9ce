"""What each sweepable kind's runner offers a sweep: the figures its report holds, whether it reports
intermediate results (for early stopping), and a setup that trials can share.

A kind is sweepable when its runner module is listed here with a `report_fields(scenario)` function. The
functions live next to the code that writes the report, so the list of figures cannot drift from it.
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import Any

# kind -> (module with report_fields, runner module)
SWEEPABLE: dict[str, tuple[str, str]] = {
    "memorization": ("memorylab.runners.memorization_fields", "memorylab.runners.memorization"),
    "unlearning": ("memorylab.runners.unlearning_report", "memorylab.runners.unlearning"),
    "continual": ("memorylab.runners.continual", "memorylab.runners.continual"),
}


def report_fields(scenario: Any) -> set[str]:
    """Dotted paths of every number the kind's report.json will hold for this scenario."""
    module = importlib.import_module(SWEEPABLE[scenario.kind][0])
    return set(module.report_fields(scenario))


def runner_module(kind: str) -> ModuleType:
    return importlib.import_module(SWEEPABLE[kind][1])


def reports_progress(kind: str) -> bool:
    """Whether the kind's runner takes on_progress, i.e. reports intermediate results a scheduler can read."""
    return "on_progress" in inspect.signature(runner_module(kind).run).parameters
