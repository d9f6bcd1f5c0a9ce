"""What a trained model was trained with, kept beside it, so a resumed run reuses only a model it would train.

`--resume` keeps finished models and continues from checkpoints. Without a record, a run resumed with
another learning rate, world or seed would reuse the old model and report the new settings as its own. The
record (models/<name>/training.json) is written before training starts, so checkpoints are covered too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional, Sequence

from memorylab.config_diff import differences
from memorylab.errors import MemorylabError
from memorylab.models.documents import Example

RECORD = "training.json"
# Settings that change when checkpoints are written, not what is trained.
NOT_TRAINING = frozenset({"checkpoint_every"})


def training_record(model: Any, train: Any, seed: int, documents: Sequence[Any],
                    start_from: Optional[Path] = None) -> dict[str, Any]:
    """The model spec, training settings, seed and a digest of the documents (texts and example prompts); for a
    model trained further from another (`start_from`), that model's own record too."""
    digest = hashlib.sha256()
    for d in documents:
        digest.update(json.dumps([d.prompt, d.answer] if isinstance(d, Example) else d).encode())
        digest.update(b"\0")
    record = {"model": model.model_dump(mode="json"), "train": train.model_dump(mode="json", exclude=set(NOT_TRAINING)),
              "seed": seed, "documents": {"count": len(documents), "sha256": digest.hexdigest()}}
    if start_from is not None:
        base = start_from.parent / RECORD  # start_from is the base's final/ folder
        record["start_from"] = json.loads(base.read_text()) if base.exists() else str(start_from)
    return record


def check_training_record(folder: Path, record: dict[str, Any]) -> None:
    """Refuse a model folder whose record differs from `record`; write `record` into a folder without one.

    A folder with a model or checkpoints but no record (written by a memorylab that kept none) is trusted,
    and gets no record: its settings are unknown."""
    path = folder / RECORD
    if path.exists():
        saved = json.loads(path.read_text())
        differs = [_told(*d) for d in differences(saved, record)]
        if differs:
            raise MemorylabError(
                f"{folder} holds a model trained with other settings than this run's ({'; '.join(differs[:3])}); "
                "run with --overwrite to train afresh, or choose another --out")
        return
    if (folder / "final").exists() or (folder / "checkpoints").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))


def _told(path: str, saved: Any, now: Any) -> str:
    return "the training documents differ" if path == "documents.sha256" else f"{path} was {saved!r}, now {now!r}"
