"""The scenario kinds: one entry each, declaring everything the rest of memorylab asks of a kind.

A kind is its schema (a pydantic model, one module under memorylab/schema/) plus, named as lazy
"package.module:name" strings so that listing them imports neither Ray nor torch: the runner that runs it,
the function that lists the figures of its report (which makes it sweepable), the setup trials of a sweep can
share, and a check against the files it names. The loader, the CLI, `memorylab tune` and the sweep checks read
this table and nothing else, so a new kind is one entry here plus its own files (README, "Adding a scenario
kind"). The blocks kinds share (world, model, train, eval, resources, ray) are in memorylab/schema/common.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

from pydantic import BaseModel

from memorylab.lazy import load_target
from memorylab.schema.common import JOINS_RAY
from memorylab.schema.continual import ContinualScenario
from memorylab.schema.memorization import MemorizationScenario
from memorylab.schema.memory_agent import MemoryAgentScenario
from memorylab.schema.memory_agent_eval import MemoryAgentEvalScenario
from memorylab.schema.sweep import SweepScenario
from memorylab.schema.unlearning import UnlearningScenario


@dataclass(frozen=True)
class SharedSetup:
    """Models that every trial of a sweep would train alike, trained once: `prepare(scenario, folder,
    scenario_path) -> overrides` trains them into `folder` and returns the dotted settings that make a trial
    use them. Used only when the sweep varies no setting under `prefixes` (those the models depend on)."""

    prefixes: tuple[str, ...]
    prepare: str


@dataclass(frozen=True)
class Kind:
    """One scenario kind. `command` is how it runs: `memorylab run` (with `runner`), `serve` or `tune`."""

    name: str
    schema: type[BaseModel]
    command: Literal["run", "serve", "tune"] = "run"
    runner: Optional[str] = None  # run(scenario, out_dir, RunContext) -> report (memorylab/runners/contract.py)
    report_fields: Optional[str] = None  # report_fields(scenario) -> the report's figures; makes the kind sweepable
    reports_progress: bool = False  # its runner passes intermediate results to RunContext.on_progress
    shared_setup: Optional[SharedSetup] = None
    check: Optional[str] = None  # check(scenario, CheckContext): against the files it names, when it loads

    @property
    def sweepable(self) -> bool:
        return self.report_fields is not None

    def load(self, entry: str) -> Any:
        """The object one of the entry's strings names (`kind.load("runner")`); None when the kind has none."""
        target = getattr(self, entry)
        return None if target is None else load_target(target)


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("memorization", MemorizationScenario, runner="memorylab.runners.memorization.run:run",
         report_fields="memorylab.runners.memorization.report:report_fields"),
    Kind("unlearning", UnlearningScenario, runner="memorylab.runners.unlearning.run:run",
         report_fields="memorylab.runners.unlearning.report:report_fields", reports_progress=True,
         shared_setup=SharedSetup(("seed", "world", "model", "train", "data", "reference", "resources.trainer"),
                                  "memorylab.runners.unlearning.shared:prepare_shared")),
    Kind("continual", ContinualScenario, runner="memorylab.runners.continual.run:run",
         report_fields="memorylab.runners.continual.report:report_fields", reports_progress=True,
         # resources.trainer fixes the trainer's torch threads, and the thread split orders float reductions.
         shared_setup=SharedSetup(("seed", "world", "model", "train", "resources.trainer"),
                                  "memorylab.runners.continual.run:prepare_shared")),
    Kind("memory_agent", MemoryAgentScenario, command="serve"),
    Kind("memory_agent_eval", MemoryAgentEvalScenario, runner="memorylab.runners.memory_agent_eval.run:run",
         check="memorylab.schema.memory_agent_eval:check_agent"),
    Kind("sweep", SweepScenario, command="tune", check="memorylab.tune.checks:check_sweep"),
)}


def kind_of(scenario: BaseModel) -> Kind:
    return KINDS[scenario.kind]  # type: ignore[attr-defined]


def validate_scenario(raw: dict, *, joins_ray: bool = False) -> BaseModel:
    """A raw mapping validated as the kind it names (pydantic's ValidationError if it does not fit).
    `joins_ray`: the scenario runs inside a Ray that is already up (its `ray:` section starts nothing)."""
    return KINDS[raw["kind"]].schema.model_validate(raw, context={JOINS_RAY: joins_ray})
