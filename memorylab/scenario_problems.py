"""Problems of a scenario file, each reported as `FILE:LINE: field.path: message`.

The loader (scenario_loader.py) finds the problems pydantic reports; the checks a kind runs against other files
at load time (a sweep against the scenario it wraps, an agent evaluation against its agent) report theirs the
same way, through the `CheckContext` the loader hands them: where each key of the file sits, which keys the
command line's `--set` changed, and how to load a scenario the file names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

from pydantic import BaseModel

Loc = tuple[str, ...]  # a field path such as ("train", "lr"); list indices are strings too ("0")
SET = "--set"  # stands for the line of a problem that a command-line override caused


class Problems:
    """The problems found in one file, in the order an editor wants them."""

    def __init__(self, file: Union[str, os.PathLike]):
        self.file = str(file)  # as the user spelled it, so the line is relative to where they ran from
        self.found: list[tuple[Union[int, str], str, str]] = []

    def add(self, line: Union[int, str], field: str, message: str) -> None:
        message = " ".join(str(message).split())  # one line, whatever pydantic or PyYAML said
        self.found.append((line, field, message))

    @property
    def lines(self) -> list[str]:
        # In file order (pydantic reports in schema order), then the overrides in command-line order.
        order = sorted(self.found, key=lambda p: (1, 0) if p[0] == SET else (0, p[0]))
        return [f"{self.file}:{line}: {field}: {message}" for line, field, message in order]


def line_of(loc: Loc, lines: dict[Loc, int], set_paths: set[Loc], message: Optional[str] = None) -> Union[int, str]:
    """The line a problem at `loc` is reported on, or SET when a command-line override caused it."""
    # An override at loc or above it set the offending value.
    if any(loc[:i] in set_paths for i in range(len(loc), 0, -1)):
        return SET
    # One below it changed the mapping a validator refused (world.forget given by --set, world's check failing):
    # blamed when the refusal names the key it set (not for an unrelated world.seed beside it).
    below = [p for p in set_paths if len(p) > len(loc) and p[: len(loc)] == loc]
    if loc and any(message is None or p[-1] in message for p in below):
        return SET
    # The deepest part of the path the file spells out: the key itself, or for a missing field (or a
    # model validator's error) the enclosing mapping.
    for i in range(len(loc), 0, -1):
        if loc[:i] in lines:
            return lines[loc[:i]]
    # The file never mentions loc, but overrides set keys below it (a validator on a mapping they created).
    return SET if below else lines[()]


def strip_union_tags(loc: Loc, data: Any) -> Loc:
    """pydantic puts a discriminated union's tag into the path (methods.0.uld.alpha); the file has no such
    key (methods.0.alpha), so drop a segment that is not a key of its mapping but one of its values."""
    kept, node = [], data
    for part in loc:
        if isinstance(node, dict) and part not in node and part in {v for v in node.values() if isinstance(v, str)}:
            continue
        kept.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            node = None
    return tuple(kept)


# load(context, value, key, label) -> (model, raw mapping) of the scenario at `key`, or None after reporting
NestedLoader = Callable[["CheckContext", Any, str, str], Optional[tuple[BaseModel, dict]]]


@dataclass
class CheckContext:
    """What a kind's load-time check reads and reports through: the file's lines and overrides, its folder
    (which resolves the relative paths it names), and the loader of the scenarios it names."""

    problems: Problems
    lines: dict[Loc, int]
    set_paths: set[Loc]
    base: Path
    load: NestedLoader

    def add(self, loc: Loc, message: str) -> None:
        """A problem at the field `loc` of this file."""
        self.problems.add(line_of(loc, self.lines, self.set_paths), ".".join(loc) or "file", message)

    def nested(self, value: Any, key: str, label: str) -> Optional[tuple[BaseModel, dict]]:
        """The scenario the field `key` names (`value`: a path relative to this file, or the mapping inline):
        its validated model and raw mapping, or None after its problems were added here, on `key`'s line.
        `label` opens a problem of a named file ("the agent scenario: FILE:LINE: ...")."""
        return self.load(self, value, key, label)
