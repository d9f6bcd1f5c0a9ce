"""Scenarios named inside another scenario file — a sweep's `scenario`, an agent evaluation's `agent` — loaded
and checked when the outer file loads, their problems reported on the outer file's lines (`agent.serve.port`
at its line for an inline one, `agent: the agent scenario: FILE:LINE: ...` for a file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel

from memorylab.schema.common import IN_JOINED_RAY

# Files whose loading is under way: a named file loads the files it names in turn, and a loop would never end.
_LOADING: set[Path] = set()


def load_nested(value: Any, key: str, label: str, lines: dict, set_paths: set, out: Any,
                base: Path) -> Optional[tuple[BaseModel, dict]]:
    """The scenario at `key` (a path relative to `base`, or the mapping inline): its model and raw mapping, or
    None after adding its problems to `out`. `label` opens a problem of a named file ("the agent scenario").
    A nested scenario runs inside its parent's Ray, so its own `ray:` is not checked against its resources."""
    from memorylab import scenario_loader as loader

    here = (key,)
    if isinstance(value, str):
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base / path
        resolved = path.resolve()
        if resolved in _LOADING:
            out.add(loader._line_of(here, lines, set_paths), key,
                    f"{value} leads back to itself (scenario files naming each other in a loop)")
            return None
        _LOADING.add(resolved)
        try:
            return loader.load_scenario_and_dict(path, joins_ray=True)
        except loader.ScenarioError as e:
            for problem in e.problems:
                out.add(loader._line_of(here, lines, set_paths), key, f"{label}: {problem}")
            return None
        finally:
            _LOADING.discard(resolved)
    inner = loader._Problems(out.file)
    inner_lines = {loc[1:]: line for loc, line in lines.items() if loc[:1] == here}
    inner_lines.setdefault((), lines.get(here, lines[()]))
    inner_set = {loc[1:] for loc in set_paths if loc[:1] == here and len(loc) > 1}
    model = loader._validate(value, inner_lines, inner_set, inner, base, IN_JOINED_RAY)
    for line, field, message in inner.found:
        out.add(line, f"{key}.{field}" if field != "file" else key, message)
    if model is None or inner.found:
        return None
    return model, value


def check_agent_eval(scenario: Any, lines: dict, set_paths: set, out: Any, base: Path) -> None:
    """An agent evaluation against its agent: the agent loads and is a memory_agent, and the synthetic
    sessions fit its world (checked here, not when the sessions are built after Ray has started)."""
    from memorylab import scenario_loader as loader

    def add(loc: tuple[str, ...], message: str) -> None:
        out.add(loader._line_of(loc, lines, set_paths), ".".join(loc), message)

    loaded = load_nested(scenario.agent, "agent", "the agent scenario", lines, set_paths, out, base)
    if loaded is None:
        return
    agent = loaded[0]
    if agent.kind != "memory_agent":
        return add(("agent",), f"a '{agent.kind}' scenario; an evaluation needs a memory_agent scenario")
    if scenario.dataset.source != "synthetic":
        return None
    if scenario.compare is not None:
        add(("compare",), "needs dataset.source locomo (the synthetic sessions are evaluated by serve_eval)")
    world, wanted = agent.world, scenario.synthetic
    retain = world.num_people - world.forget - world.holdout
    if wanted.new_people > world.holdout:
        add(("synthetic", "new_people"), f"{wanted.new_people} is more than the agent world's {world.holdout} "
                                         "holdout people (the never-trained people the sessions introduce)")
    if wanted.known_people > retain:
        add(("synthetic", "known_people"), f"{wanted.known_people} is more than the agent world's {retain} "
                                           "retain people (the trained people the sessions ask about)")
    return None
