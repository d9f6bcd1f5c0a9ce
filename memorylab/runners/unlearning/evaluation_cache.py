"""A cache of model evaluations on disk, for reference models that many runs measure the same way.

A sweep's trials all compare against one target and one retrain model; measuring those two again in every
trial would double a trial's cost. An entry's key covers everything the figures depend on: the model's files
(names, sizes, modification times), and the settings that decide the evaluation data and procedure. Entries
are written atomically, so trials running side by side at worst both compute one, never read half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")


def model_fingerprint(path: str) -> Any:
    """What identifies a saved model's content: its files' names, sizes and mtimes (a hub id stays a name)."""
    folder = Path(path)
    if not folder.is_dir():
        return path
    return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()]


def cached(folder: Optional[str], key: dict[str, Any], compute: Callable[[], T]) -> T:
    """compute(), or its stored result under `folder` for the same key; no cache when folder is None."""
    if folder is None:
        return compute()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    entry = Path(folder) / f"{digest}.pkl"
    if entry.exists():
        with open(entry, "rb") as f:
            return pickle.load(f)
    value = compute()
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(value, f)
    tmp.replace(entry)
    return value
