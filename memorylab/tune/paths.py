"""Dotted paths (`methods.0.lr`) into a scenario: do they name a field (setting them: memorylab.dotted).

A swept path is checked against the validated model rather than the raw YAML, so a field the file leaves at
its default (`methods.0.retain_weight`) can be swept, while a typo (`methods.0.lerning_rate`) cannot.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any, Mapping, Optional

from pydantic import BaseModel

from memorylab.dotted import set_dotted


def field_problem(model: BaseModel, path: str) -> Optional[str]:
    """None when `path` names a field of `model` (list items by index, any key of a free mapping);
    otherwise a sentence saying where the path leaves the scenario and what was expected there."""
    node: Any = model
    parts = path.split(".")
    for i, part in enumerate(parts):
        here = ".".join(parts[:i]) or "the scenario"
        if isinstance(node, BaseModel):
            fields = type(node).model_fields
            if part not in fields:
                close = difflib.get_close_matches(part, list(fields), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                return f"names no field: {here} has no '{part}'{hint}; it has {', '.join(fields)}"
            node = getattr(node, part)
        elif isinstance(node, (list, tuple)):
            if not part.isdigit() or int(part) >= len(node):
                return f"names no field: {here} is a list of {len(node)}; '{part}' is not an index into it"
            node = node[int(part)]
        elif isinstance(node, Mapping):
            node = node.get(part)  # free mappings (custom resources) take any key
        else:
            return f"names no field: {here} is a value ({type(node).__name__}), it has no '{part}'"
    return None


def with_values(raw: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of the raw scenario mapping with each dotted path set to its value (paths were checked
    against the scenario by `field_problem` first, so a path that leaves the mapping is a bug: it raises)."""
    out = copy.deepcopy(dict(raw))
    for path, value in values.items():
        problem = set_dotted(out, path.split("."), value)
        if problem:
            raise ValueError(f"{path}: {problem}")
    return out
