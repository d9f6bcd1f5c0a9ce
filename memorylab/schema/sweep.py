"""`kind: sweep` — a Ray Tune search over the fields of another scenario, scored by objectives on its report.

The wrapped scenario is named by path (relative to the sweep file) or written inline. What can only be
checked against the wrapped scenario (that each swept path names a field, that each objective reads a figure
its runner writes) is checked by memorylab/tune/checks.py when the file is loaded, so a sweep fails at
`memorylab validate`, not an hour into the experiment.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from memorylab.schema.common import ActorResources, RayConfig, RunName, Seed, Strict, fits_in_local_ray

DOMAINS = ("choice", "grid", "uniform", "loguniform", "randint")


class Domain(Strict):
    """Exactly one of: `choice: [..]` (sampled), `grid: [..]` (every value, times num_samples),
    `uniform: [low, high]`, `loguniform: [low, high]` (low > 0), `randint: [low, high]` (both included)."""

    choice: Optional[list[Any]] = Field(None, min_length=1)
    grid: Optional[list[Any]] = Field(None, min_length=1)
    uniform: Optional[tuple[float, float]] = None
    loguniform: Optional[tuple[float, float]] = None
    randint: Optional[tuple[int, int]] = None

    @model_validator(mode="after")
    def _one_kind(self) -> "Domain":
        given = [k for k in DOMAINS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(DOMAINS)} (got {', '.join(given) or 'none'})")
        bounds = self.uniform or self.loguniform or self.randint
        if bounds is not None:
            low, high = bounds
            if (high < low) if self.randint else (high <= low):
                raise ValueError(f"{self.kind} needs low {'<=' if self.randint else '<'} high, got [{low}, {high}]")
            if self.loguniform and low <= 0:
                raise ValueError(f"loguniform needs a positive low bound, got {low}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in DOMAINS if getattr(self, k) is not None)

    @property
    def values(self) -> Any:
        return getattr(self, self.kind)

    def probe_values(self) -> list[Any]:
        """Values that stand for the whole domain when the wrapped scenario is validated with them:
        every listed value, or both bounds of a range, and for uniform and loguniform a value between them
        with a fraction, as a draw has (an integer field takes the bounds but refuses every draw)."""
        if self.kind not in ("uniform", "loguniform"):
            return list(self.values)
        low, high = self.values
        between = (low + high) / 2
        if float(between).is_integer():
            between = math.nextafter(between, high)  # the next float up: never whole
        return [low, between, high]


class Objective(Strict):
    """A figure to optimise: an arithmetic expression over the wrapped runner's report, e.g.
    `1 - models.uld.knowmem_forget / models.target.knowmem_forget`. Names are dotted paths into report.json;
    a key that is not an identifier is written as a subscript: `models["grad-ascent"].knowmem_retain`."""

    name: str = Field(..., pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    maximize: Optional[str] = None
    minimize: Optional[str] = None

    @model_validator(mode="after")
    def _one_direction(self) -> "Objective":
        if (self.maximize is None) == (self.minimize is None):
            raise ValueError("give exactly one of maximize: EXPR or minimize: EXPR")
        try:
            ast.parse(self.expr, mode="eval")
        except SyntaxError as e:
            raise ValueError(f"expression {self.expr!r} does not parse: {e.msg}") from None
        return self

    @property
    def expr(self) -> str:
        return self.maximize if self.maximize is not None else self.minimize  # type: ignore[return-value]

    @property
    def mode(self) -> str:
        return "max" if self.maximize is not None else "min"


class SearchConfig(Strict):
    algorithm: Literal["random", "optuna"] = Field(
        "random", description="random (with grid values crossed) or optuna (TPE; NSGA-II for several objectives)")
    seed: Optional[Seed] = Field(None, description="the searcher's seed (default: the sweep's seed)")


class SchedulerConfig(Strict):
    """fifo runs every trial to the end; asha stops the weaker ones early, reading intermediate results."""

    name: Literal["fifo", "asha"] = "fifo"
    grace_period: int = Field(1, ge=1, description="asha: reports a trial always gets")
    reduction_factor: float = Field(2.0, gt=1)
    max_t: Optional[int] = Field(None, ge=1, description="asha: most reports per trial (default: unbounded)")


class SweepScenario(Strict):
    """Run another scenario many times with fields drawn from `space`, and read objectives from each report."""

    name: RunName
    kind: Literal["sweep"]
    description: str = ""
    seed: Seed = 0
    scenario: Union[str, dict[str, Any]] = Field(
        ..., description="the wrapped scenario: a file path (relative to this file) or an inline mapping")
    space: dict[str, Domain] = Field(..., description="dotted path in the wrapped scenario -> domain")
    objectives: list[Objective] = Field(..., min_length=1)
    num_samples: int = Field(1, ge=1, description="trials drawn (with grid values: repeats of the grid)")
    search: SearchConfig = SearchConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    trial_resources: ActorResources = Field(
        ActorResources(), description="what each trial reserves; the wrapped runner's tasks run inside it")
    max_concurrent_trials: Optional[int] = Field(None, ge=1, description="default: as many as resources allow")
    storage_path: Optional[str] = Field(
        None, description="folder the experiment folder <name> is written under (default: runs/); an output, so it "
        "need not exist; ~ is expanded, a relative path is taken from the working directory (as --out is, not "
        "from this file's folder); --out wins")
    ray: RayConfig = RayConfig()

    @field_validator("storage_path")
    @classmethod
    def _expand_home(cls, path: Optional[str]) -> Optional[str]:
        return None if path is None else str(Path(path).expanduser())  # never a literal `~` folder

    @field_validator("space")
    @classmethod
    def _not_empty(cls, space: dict[str, Domain]) -> dict[str, Domain]:
        if not space:
            raise ValueError("the search space is empty; name at least one field to vary")
        for path in space:
            if not path or "" in path.split("."):
                raise ValueError(f"{path!r} is not a dotted path such as methods.0.lr")
        return space

    @field_validator("ray")
    @classmethod
    def _fits_local_ray(cls, ray: RayConfig, info: ValidationInfo) -> RayConfig:
        if "trial_resources" in info.data:  # a trial asking more CPUs than the local Ray has would never start
            fits_in_local_ray(info.data["trial_resources"], ray, "trial_resources", info)
        return ray

    @model_validator(mode="after")
    def _consistent(self) -> "SweepScenario":
        names = [o.name for o in self.objectives]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"objective names must be unique; repeated: {', '.join(dupes)}")
        if self.scheduler.name == "asha" and len(self.objectives) > 1:
            raise ValueError("the asha scheduler stops trials on one figure; with several objectives use "
                             "scheduler: {name: fifo} (optuna then searches the Pareto front)")
        res = self.trial_resources
        if not (res.num_cpus or res.num_gpus or any(res.resources.values())):
            raise ValueError("trial_resources reserve nothing; a trial needs some CPU (or GPU) for its runner")
        if self.search.algorithm == "optuna" and any(d.grid is not None for d in self.space.values()):
            raise ValueError("optuna cannot search a grid; write choice: [...] instead of grid: [...]")
        return self

    @property
    def searcher_seed(self) -> int:
        return self.seed if self.search.seed is None else self.search.seed
