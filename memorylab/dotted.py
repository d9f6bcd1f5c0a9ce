"""Dotted paths (`train.lr`, `methods.0.lr`) set into a raw scenario mapping, as `--set` and sweeps do.

Mappings on the way that are absent (or left empty, `train:`) are created; list items are entered by their
position and must exist, since appending to a list by position would silently depend on its length.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence


def set_dotted(data: dict, parts: Sequence[str], value: Any) -> Optional[str]:
    """Set the value at `parts` inside `data`; None when done, otherwise a sentence saying where the path
    leaves the mapping (nothing is changed then)."""
    node: Any = data
    for i, part in enumerate(parts):
        where = ".".join(parts[:i]) or "the scenario"
        key: Any = part
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                positions = f"positions 0..{len(node) - 1}" if node else "positions: it is empty"
                return f"{where} is a list of {len(node)} item(s); '{part}' is not one of its {positions}"
            key = int(part)
        elif not isinstance(node, dict):
            return f"{where} is {describe(node)}, not a mapping or a list, so it has no key '{part}'"
        if i == len(parts) - 1:
            node[key] = value
        elif isinstance(node, dict) and node.get(key) is None:
            node[key] = {}
            node = node[key]
        else:
            node = node[key]
    return None


def describe(value: Any) -> str:
    """'a list', 'an integer'...: what a value is, in words, for messages."""
    if value is None:
        return "nothing (null)"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}
    return names.get(type(value), f"a {type(value).__name__}")
