"""Registry entries as "package.module:name" strings, imported only when they are used (the lm-evaluation-harness
way): a scenario kind's runner, a model backend, loads Ray, torch or vLLM only when a run chooses it, so listing
every option costs nothing."""

from __future__ import annotations

import importlib
import re
from typing import Any

# Dotted module path, one colon, one name: what `load_target` can import without surprises.
TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def check_target(target: Any) -> str:
    """`target` when it looks like 'package.module:name', else a ValueError saying what was expected."""
    if not isinstance(target, str) or not TARGET.fullmatch(target):
        raise ValueError(f"a registry entry must look like 'package.module:name', got {target!r}")
    return target


def load_target(target: str) -> Any:
    """The object a 'package.module:name' string names (ImportError when its module or name is missing)."""
    module_name, _, name = check_target(target).partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImportError(f"module {module_name!r} has no {name!r}") from None
