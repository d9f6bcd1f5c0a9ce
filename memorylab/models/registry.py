"""Backends by name, as lazy "module:Class" strings (the lm-evaluation-harness way).

A heavy engine (vLLM) is imported only when a scenario chooses it, so installing or importing memorylab
never needs it. Every class has `load(source, *, dtype, device, batch_size)`.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

BACKENDS: dict[str, str] = {
    "hf": "memorylab.models.backends.hf:HFLM",
    "vllm": "memorylab.models.backends.vllm:VLLMLM",  # extra `vllm`, GPU only
}


# Dotted module path, one colon, one class name: what backend_class can import without surprises.
_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def register_backend(name: str, target: str) -> None:
    # Checked here, at registration, so a malformed target fails where it was written and not when a
    # scenario first chooses the backend.
    if not isinstance(target, str) or not _TARGET.fullmatch(target):
        raise ValueError(f"backend target must look like 'package.module:Class', got {target!r}")
    BACKENDS[name] = target


def unknown_backend(name: str) -> str:
    """The sentence that refuses a backend name nobody registered."""
    return f"unknown backend {name!r}; known backends: {', '.join(sorted(BACKENDS))}"


def backend_class(name: str) -> Any:
    if name not in BACKENDS:
        raise KeyError(unknown_backend(name))
    module_name, _, attr = BACKENDS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"backend {name!r} needs a package that is not installed ({exc.name}); "
                          f"install memorylab with the extra that provides it") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImportError(f"backend {name!r}: module {module_name!r} has no class {attr!r}") from None


def load_lm(source: str, *, backend: str = "hf", dtype: str = "float32", device: str = "auto",
            batch_size: int = 32, speculative: Any = None) -> Any:
    """An LM-protocol object for a hub id or a local model folder. `speculative` (SpeculativeParams naming a
    drafter) has the backend load the drafter with the model; only passed when set, so a backend without
    speculative decoding still loads."""
    extra = {} if speculative is None else {"speculative": speculative}
    return backend_class(backend).load(source, dtype=dtype, device=device, batch_size=batch_size, **extra)
