"""A cache of model evaluations on disk, for reference models that many runs measure the same way.

A sweep's trials all compare against one target and one retrain model; measuring those two again in every
trial would double a trial's cost. An entry's key covers everything the figures depend on: the model's files
(names, sizes, modification times), and the settings that decide the evaluation data and procedure. Entries
are written atomically, so trials running side by side at worst both compute one, never read half of one.
Entries are JSON, never pickles: the folder may be shared, and nothing memorylab reads from it may run code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import numpy as np

from memorylab.evaluation import Evaluation

T = TypeVar("T")


def model_fingerprint(path: str) -> Any:
    """What identifies a saved model's content: its files' names, sizes and mtimes (a hub id stays a name)."""
    folder = Path(path)
    if not folder.is_dir():
        return path
    return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()]


def cached(folder: Optional[str], key: dict[str, Any], compute: Callable[[], T],
           encode: Callable[[T], Any] = lambda value: value, decode: Callable[[Any], T] = lambda data: data) -> T:
    """compute(), or its stored result under `folder` for the same key; no cache when folder is None. The
    result is stored as the JSON of encode(result) and read back through decode."""
    if folder is None:
        return compute()
    found = stored(folder, key, decode)
    if found is not None:
        return found
    value = compute()
    store(folder, key, value, encode)
    return value


def _entry(folder: str, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return Path(folder) / f"{digest}.json"


def stored(folder: Optional[str], key: dict[str, Any], decode: Callable[[Any], T] = lambda data: data) -> Optional[T]:
    """The value stored under `folder` for `key`, or None (no folder, or nothing stored yet)."""
    if folder is None:
        return None
    entry = _entry(folder, key)
    return decode(json.loads(entry.read_text())) if entry.exists() else None


def store(folder: Optional[str], key: dict[str, Any], value: T, encode: Callable[[T], Any] = lambda v: v) -> None:
    """`value` stored for `key`, atomically (nothing when folder is None)."""
    if folder is None:
        return
    entry = _entry(folder, key)
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(encode(value), default=_plain))
    tmp.replace(entry)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON takes them (a sample's score, a figure's array)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store a {type(value).__name__} in the evaluation cache")


def encode_evaluations(evaluations: dict[Optional[tuple[str, ...]], Evaluation]) -> list[dict[str, Any]]:
    """An evaluation per unit set (None: all of them) as JSON: the keys, tuples or None, become lists or null."""
    return [{"units": None if units is None else list(units), "metrics": e.metrics, "samples": e.samples,
             "raw": e.raw} for units, e in evaluations.items()]


def decode_evaluations(entries: list[dict[str, Any]]) -> dict[Optional[tuple[str, ...]], Evaluation]:
    return {None if e["units"] is None else tuple(e["units"]): Evaluation(e["metrics"], e["samples"], e["raw"])
            for e in entries}
