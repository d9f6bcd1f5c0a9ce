"""Load a scenario file into its pydantic model; every problem becomes one `FILE:LINE: field.path: message`.

pydantic knows field paths but not lines, and yaml.safe_load forgets lines, so we compose the YAML node tree
ourselves, map every key path to the line it sits on, and translate each pydantic error into a line an
editor can jump to. All problems of a file are collected, so a user fixes the file in one pass. Problems that
come from a command-line override name `--set` instead of a line: the file is not where to look.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import yaml
from pydantic import BaseModel, ValidationError

from memorylab.dotted import describe, set_dotted
from memorylab.errors import MemorylabError
from memorylab.scenario import KINDS, validate_scenario
from memorylab.scenario_problems import SET, CheckContext, Loc, Problems, line_of, strip_union_tags
from memorylab.schema.common import JOINS_RAY

# Fields that may name a local file or folder to read (a model, a reference model, `*_path`); checked only
# when the value looks like a path, since the same fields also hold HF hub ids ("gpt2") and the built-in
# "tiny". Outputs (a sweep's storage_path) need not exist yet.
_PATH_FIELDS = {"name", "path", "base", "target", "retrain"}
_OUTPUT_PATH_FIELDS = {"storage_path"}
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Far above any scenario (a large sweep has a few thousand values), far below what would hang a walk of it.
MAX_EXPANDED_NODES = 200_000


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` as a float: PyYAML follows YAML 1.1, which needs a dot (`1.0e-3`),
    so learning rates written the usual way would reach the recorded config as strings."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


class ScenarioError(MemorylabError):
    """A scenario that cannot be loaded; `problems` holds one `FILE:LINE: field.path: message` each."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def load_scenario(path: Union[str, os.PathLike], overrides: Iterable[str] = (), *,
                  joins_ray: bool = False) -> BaseModel:
    """The validated model of the file's kind, with overrides (`a.b.c=value`) applied; ScenarioError if not.
    `joins_ray`: as in `load_scenario_and_dict`."""
    return _load(Path(path), overrides, validate=True, joins_ray=joins_ray)[0]


def load_scenario_and_dict(path: Union[str, os.PathLike], overrides: Iterable[str] = (), *,
                           joins_ray: bool = False) -> tuple[BaseModel, dict]:
    """Both at once, from one read of the file: the validated model and the raw merged mapping.

    `joins_ray`: the run joins a Ray cluster whatever the file's ray.address says (the command line's
    --address, or $RAY_ADDRESS), so the checks against the local Ray that ray.num_cpus would start do not
    apply."""
    model, data = _load(Path(path), overrides, validate=True, joins_ray=joins_ray)
    return model, data


def load_scenario_dict(path: Union[str, os.PathLike], overrides: Iterable[str] = ()) -> dict:
    """The raw mapping of the file with overrides merged in, not validated (the `config` of a report).

    Raises ScenarioError for what stops it being a mapping: missing file, YAML syntax, malformed overrides.
    """
    return _load(Path(path), overrides, validate=False)[1]


def _load(path: Path, overrides: Iterable[str], validate: bool,
          joins_ray: bool = False) -> tuple[Optional[BaseModel], dict]:
    out = Problems(path)
    parsed = _read(path, out)
    if parsed is None:
        raise ScenarioError(out.lines)
    data, lines = parsed
    if isinstance(overrides, str):  # one override passed bare would otherwise be read character by character
        overrides = [overrides]
    set_paths = _apply_overrides(data, overrides or (), out)
    context = {JOINS_RAY: joins_ray}
    model = _validate(data, lines, set_paths, out, path.absolute().parent, context) if validate else None
    if out.lines:
        raise ScenarioError(out.lines)
    return model, data


def _read(path: Path, out: Problems) -> Optional[tuple[dict, dict[Loc, int]]]:
    """The file's mapping and the line of every key path, or None after adding a file/yaml problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return out.add(1, "file", "no such file")
    except IsADirectoryError:
        return out.add(1, "file", "is a folder, not a scenario file")
    except (OSError, UnicodeDecodeError) as e:
        return out.add(1, "file", f"cannot read it: {getattr(e, 'strerror', None) or e}")
    try:
        loader = _Loader(text)  # checks for unprintable characters right here
    except yaml.YAMLError as e:  # a ReaderError: it has a character position, not a mark
        line = text.count("\n", 0, getattr(e, "position", 0)) + 1
        return out.add(line, "yaml", str(e).splitlines()[0])
    try:
        node = loader.get_single_node()
        if node is None:
            return out.add(1, "file", "empty file; expected a mapping with at least 'name' and 'kind'")
        bomb = _over_expanded(node)
        if bomb is not None:
            return out.add(bomb.start_mark.line + 1, "yaml", f"aliases here expand to more than "
                                                             f"{MAX_EXPANDED_NODES:,} values (nested aliases?)")
        lines: dict[Loc, int] = {(): node.start_mark.line + 1}
        _index(node, (), lines, out, stack=())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        message = e.problem or "invalid YAML"
        if e.context:
            message += f" ({e.context})"
        return out.add(mark.line + 1 if mark else 1, "yaml", message)
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        return out.add(lines[()], "file", f"expected a mapping of settings at the top, got {describe(data)}")
    return data, lines


def _over_expanded(root: yaml.Node) -> Optional[yaml.Node]:
    """The innermost node whose aliases expand past MAX_EXPANDED_NODES values, or None. Nested aliases
    ("billion laughs") make a file of a few lines stand for billions of values: every walk of it (the line
    index below, validation, a report's dump) would never end. Sizes are counted with each shared node once
    per use, but computed once per node, so this check is linear in the file."""
    sizes: dict[int, int] = {}

    def children(node: yaml.Node) -> list:
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        return list(node.value) if isinstance(node, yaml.SequenceNode) else []

    def size(node: yaml.Node) -> int:
        if id(node) not in sizes:
            sizes[id(node)] = 1  # a recursive alias (&a [*a]) counts once; _index stops there too
            sizes[id(node)] = 1 + sum(size(child) for child in children(node))
        return sizes[id(node)]

    if size(root) <= MAX_EXPANDED_NODES:
        return None
    node, seen = root, {id(root)}
    while True:  # down to the innermost, never back into a node already passed (&a [*a, ...])
        inner = next((c for c in children(node) if sizes[id(c)] > MAX_EXPANDED_NODES and id(c) not in seen), None)
        if inner is None:
            return node
        node = inner
        seen.add(id(node))


def _index(node: yaml.Node, loc: Loc, lines: dict[Loc, int], out: Problems, stack: tuple) -> None:
    """Record the line of every key (and list item) under `node`; report duplicate keys, which PyYAML
    would otherwise resolve silently in favour of the last one."""
    if id(node) in stack:  # a recursive alias (&a [*a]) would never end
        return
    stack += (id(node),)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            # Merged keys (<<: *base) have no line of their own here; problems fall back to the mapping.
            if key.tag == _MERGE_TAG or not isinstance(key, yaml.ScalarNode):
                continue
            here = loc + (key.value,)
            if here in lines:
                out.add(key.start_mark.line + 1, ".".join(here), f"duplicate key; line {lines[here]} sets it too")
            lines[here] = key.start_mark.line + 1
            _index(value, here, lines, out, stack)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[loc + (str(i),)] = item.start_mark.line + 1
            _index(item, loc + (str(i),), lines, out, stack)


def _apply_overrides(data: dict, overrides: Iterable[str], out: Problems) -> set[Loc]:
    """Merge `a.b.c=value` overrides into `data` (value typed by YAML); return the paths they set."""
    applied: set[Loc] = set()
    for item in overrides:
        key, eq, raw = item.partition("=")
        key = key.strip()
        parts = tuple(key.split("."))
        if not eq:
            out.add(SET, key or "set", f"expected a.b.c=VALUE, got {item!r}")
            continue
        if not key or "" in parts:
            out.add(SET, key or "set", f"expected a dotted path before '=', got {item!r}")
            continue
        try:
            value = yaml.load(raw, Loader=_Loader)  # typed like the file: 3, true, 1e-3, [1, 2]
        except yaml.YAMLError:
            out.add(SET, key, f"value is not valid YAML: {raw!r}")
            continue
        problem = set_dotted(data, parts, value)
        if problem:
            out.add(SET, key, problem)
        else:
            applied.add(parts)
    return applied


def _validate(data: dict, lines: dict[Loc, int], set_paths: set[Loc], out: Problems, base: Path,
              context: Optional[dict[str, Any]] = None):
    def where(loc: Loc) -> Union[int, str]:
        return line_of(loc, lines, set_paths)

    # Dispatch by hand rather than through a discriminated union: its errors would be one per known kind.
    expected = ", ".join(KINDS)
    if "kind" not in data:
        return out.add(where(("kind",)), "kind", f"required field is missing; expected one of: {expected}")
    kind = KINDS.get(data["kind"]) if isinstance(data["kind"], str) else None
    if kind is None:
        return out.add(where(("kind",)), "kind", f"unknown kind {data['kind']!r}; expected one of: {expected}")
    cls = kind.schema
    try:
        model = cls.model_validate(data, context=context)
    except ValidationError as e:
        for err in e.errors(include_url=False):
            raw = tuple(str(p) for p in err["loc"])  # with union tags, which find the member's model
            loc = strip_union_tags(raw, data)
            message = _message(err, cls, raw)
            out.add(line_of(loc, lines, set_paths, message), ".".join(loc) or "file", message)
        return None
    paths = _local_paths(model, base)
    for loc, target in paths:
        if not target.exists():
            out.add(where(loc), ".".join(loc), f"no such file or directory: {target}")
    if paths and not out.lines:
        # Every run reads the paths as written next to the scenario file, wherever the command runs from; the
        # raw config (recorded in reports, and the base of a sweep's trials) says where they are too.
        for loc, target in paths:
            set_dotted(data, loc, str(target))
        model = cls.model_validate(data, context=context)
    if kind.check is not None:  # against the files the scenario names (a sweep's wrapped scenario, say)
        kind.load("check")(model, CheckContext(out, lines, set_paths, base, _load_nested))
    return model


def _message(err: dict, cls: type[BaseModel], loc: Loc) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        model = _model_at(cls, loc[:-1])
        if model is None:
            return "unknown key"
        allowed = list(model.model_fields)
        close = difflib.get_close_matches(loc[-1], allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown key{hint}; expected one of: {', '.join(allowed)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping, got {describe(value)}"
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return (f"unknown {ctx.get('discriminator', 'kind').strip(chr(39))} {ctx.get('tag')!r}; "
                f"expected one of: {ctx.get('expected_tags', '').replace(chr(39), '')}")
    message = err["msg"]
    for noise in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(noise)
    if not isinstance(value, (dict, list, tuple)):  # a model validator's input is the whole mapping
        shown = repr(value)
        message += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return message


def _model_at(tp: Any, loc: Loc) -> Optional[type[BaseModel]]:
    """The pydantic model that validates the mapping at `loc` below `tp`, for listing its allowed keys."""
    for part in loc:
        tp = _unwrap_optional(tp)
        if typing.get_origin(tp) is typing.Annotated:
            tp = _unwrap_optional(typing.get_args(tp)[0])
        if typing.get_origin(tp) in (Union, types.UnionType):
            tp = _union_member(tp, part)  # a discriminated union: `part` is the tag
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part)
            if field is None:
                return None
            tp = field.annotation
        elif typing.get_origin(tp) in (dict, list, tuple) and typing.get_args(tp):
            tp = typing.get_args(tp)[-1]  # `part` is a key or an index; step into the value type
        else:
            return None
    tp = _unwrap_optional(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _union_member(union: Any, tag: str) -> Any:
    """The member of a discriminated union whose Literal field holds `tag` (None when none does)."""
    for member in typing.get_args(union):
        if isinstance(member, type) and issubclass(member, BaseModel) and any(
                typing.get_origin(f.annotation) is typing.Literal and tag in typing.get_args(f.annotation)
                for f in member.model_fields.values()):
            return member
    return None


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _local_paths(model: BaseModel, base: Path, loc: Loc = ()) -> list[tuple[Loc, Path]]:
    """The path-like fields (`_PATH_FIELDS`, `*_path`) whose value names a local path, each resolved against
    the scenario file's folder (not the folder the command runs from), `~` expanded.

    Found here rather than in the schema so that validation stays pure and knows nothing of the file."""
    found: list[tuple[Loc, Path]] = []
    for name, value in model:
        here = loc + (name,)
        if isinstance(value, BaseModel):
            found += _local_paths(value, base, here)
        elif isinstance(value, (dict, list, tuple)):  # e.g. a list of models in a later kind
            for key, child in value.items() if isinstance(value, dict) else enumerate(value):
                if isinstance(child, BaseModel):
                    found += _local_paths(child, base, here + (str(key),))
        elif (
            isinstance(value, str)
            and (name in _PATH_FIELDS or name.endswith("_path")) and name not in _OUTPUT_PATH_FIELDS
            and value.startswith(("/", "./", "../", "~"))
        ):
            found.append((here, Path(os.path.normpath(base / Path(value).expanduser()))))
    return found


# Files whose loading is under way: a named file loads the files it names in turn, and a loop would never end.
_LOADING: set[Path] = set()


def _load_nested(outer: CheckContext, value: Any, key: str, label: str) -> Optional[tuple[BaseModel, dict]]:
    """CheckContext.nested: the scenario at `key` of the outer file, a path relative to it or the mapping
    inline; its problems are reported on the outer file (an inline one's at their own lines). A nested scenario
    runs inside its parent's Ray, so its own `ray:` is not checked against its resources."""
    here = (key,)
    if isinstance(value, str):
        path = Path(value).expanduser()
        path = path if path.is_absolute() else outer.base / path
        resolved = path.resolve()
        if resolved in _LOADING:
            outer.add(here, f"{value} leads back to itself (scenario files naming each other in a loop)")
            return None
        _LOADING.add(resolved)
        try:
            return load_scenario_and_dict(path, joins_ray=True)
        except ScenarioError as e:
            for problem in e.problems:
                outer.add(here, f"{label}: {problem}")
            return None
        finally:
            _LOADING.discard(resolved)
    inner = Problems(outer.problems.file)
    inner_lines = {loc[1:]: line for loc, line in outer.lines.items() if loc[:1] == here}
    inner_lines.setdefault((), outer.lines.get(here, outer.lines[()]))
    inner_set = {loc[1:] for loc in outer.set_paths if loc[:1] == here and len(loc) > 1}
    model = _validate(value, inner_lines, inner_set, inner, outer.base, {JOINS_RAY: True})
    for line, field, message in inner.found:
        outer.problems.add(line, f"{key}.{field}" if field != "file" else key, message)
    if model is None or inner.found:
        return None
    return model, value


def load_named(value: Union[str, dict], named_in: Optional[Path]) -> tuple[BaseModel, dict, Optional[Path]]:
    """A scenario that another, already validated, names (a sweep's wrapped scenario, an agent evaluation's
    agent): a file relative to `named_in`, the file naming it (None: the working directory), or the mapping
    inline. Returns its model, its raw mapping and the file whose folder resolves its relative paths (its own
    file, or `named_in` for one written inline). It runs inside the Ray of the scenario that names it."""
    if isinstance(value, str):
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = (named_in.absolute().parent if named_in is not None else Path.cwd()) / path
        model, raw = load_scenario_and_dict(path, joins_ray=True)
        return model, raw, path
    raw = copy.deepcopy(value)
    return validate_scenario(raw, joins_ray=True), raw, named_in
