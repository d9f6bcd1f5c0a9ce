"""TOFU (Task of Fictitious Unlearning, Maini et al. 2024) as memorylab data: QA items and split loaders.

The files live outside the repository (../shared/data/tofu, see its README.md), one JSON object per
line. Every line is validated when loaded, so a damaged file fails at load time with a sentence naming
the file and line, not deep in an evaluation run.

Protocol (the paper's): fine-tune on `full`, unlearn `forget10` while keeping `retain90`, and compare to a
model trained on `retain90` only. `forget10` and `retain_perturbed` carry a paraphrased answer and
perturbed (wrong) answers per question: the inputs of the truth ratio (memorylab.metrics.tofu).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Union

from memorylab.data.prompts import qa_prompt
from memorylab.data.shared import find_shared
from memorylab.errors import MemorylabError
from memorylab.models.documents import Example

PathLike = Union[str, os.PathLike]

BASIC_SPLITS = ("full", "retain90", "holdout10")  # question, answer
PERTURBED_SPLITS = ("forget10", "retain_perturbed")  # + paraphrased_question/answer, perturbed_answer
SPLITS = ("full", "forget10", "retain90", "holdout10", "retain_perturbed")
_PERTURBED_FIELDS = ("paraphrased_question", "paraphrased_answer", "perturbed_answer")


@dataclass(frozen=True)
class TofuItem:
    question: str
    answer: str
    paraphrased_answer: Optional[str] = None
    perturbed_answers: tuple[str, ...] = ()
    paraphrased_question: Optional[str] = None


@dataclass
class TofuData:
    """The splits one TOFU unlearning experiment needs; forget and retain share no question."""

    forget: list[TofuItem]
    retain: list[TofuItem]
    holdout: list[TofuItem]  # authors never in `full`: the non-members for membership inference
    retain_perturbed: list[TofuItem]  # retain authors with paraphrased/perturbed answers (truth ratio)


def default_tofu_dir() -> Path:
    """$MEMORYLAB_SHARED_DATA/tofu if that folder exists, else <repo root>/../shared/data/tofu."""
    repo_root = Path(__file__).resolve().parents[2]  # memorylab/data/tofu.py -> repository root
    return find_shared("tofu", repo_root=repo_root, folder=True, what="TOFU data folder")


def _field(row: dict, key: str, where: str, split: str) -> str:
    if key not in row:
        raise MemorylabError(f"{where}: missing field '{key}' (required in {split}).")
    value = row[key]
    if not isinstance(value, str):
        raise MemorylabError(f"{where}: field '{key}' must be a string, got {type(value).__name__}.")
    return value


def _item(row: object, where: str, split: str) -> TofuItem:
    if not isinstance(row, dict):
        raise MemorylabError(f"{where}: expected a JSON object, got {type(row).__name__}.")
    question, answer = _field(row, "question", where, split), _field(row, "answer", where, split)
    if split not in PERTURBED_SPLITS:
        return TofuItem(question, answer)
    if "perturbed_answer" not in row:
        raise MemorylabError(f"{where}: missing field 'perturbed_answer' (required in {split}).")
    perturbed = row["perturbed_answer"]
    if not (isinstance(perturbed, list) and perturbed and all(isinstance(p, str) for p in perturbed)):
        raise MemorylabError(f"{where}: field 'perturbed_answer' must be a non-empty list of strings.")
    return TofuItem(
        question,
        answer,
        paraphrased_answer=_field(row, "paraphrased_answer", where, split),
        perturbed_answers=tuple(perturbed),
        paraphrased_question=_field(row, "paraphrased_question", where, split),
    )


def load_tofu_split(name: str, folder: Optional[PathLike] = None) -> list[TofuItem]:
    """The items of one split (`full`, `forget10`, `retain90`, `holdout10`, `retain_perturbed`), in file order."""
    if name not in SPLITS:
        raise MemorylabError(f"unknown TOFU split {name!r}; choose one of {', '.join(SPLITS)}.")
    path = (Path(folder) if folder is not None else default_tofu_dir()) / f"{name}.jsonl"
    if not path.is_file():
        raise MemorylabError(f"TOFU split file {path} does not exist.")
    items = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue  # a trailing newline or blank line is not a row
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise MemorylabError(f"{where}: bad JSON ({exc.msg} at column {exc.colno}).") from None
            items.append(_item(row, where, name))
    if not items:
        raise MemorylabError(f"TOFU split file {path} has no rows.")
    return items


def qa_examples(items: Iterable[TofuItem]) -> list[Example]:
    """Items as training examples in memorylab's QA format ("Question: ...\nAnswer: ..."): the question part
    is the prompt, not scored, as TOFU fine-tunes and unlearns on answers only."""
    return [Example(prompt=qa_prompt(it.question), answer=f" {it.answer}") for it in items]


def qa_documents(items: Iterable[TofuItem]) -> list[str]:
    """Items as whole texts in the QA format (what membership inference and VerbMem read)."""
    return [example.text for example in qa_examples(items)]


def load_tofu(folder: Optional[PathLike] = None, forget: str = "forget10", retain: str = "retain90",
              holdout: str = "holdout10") -> TofuData:
    """Forget, retain, holdout and retain_perturbed splits; fails if forget, retain and holdout share a question,
    or retain_perturbed asks one retain does not."""
    folder = Path(folder) if folder is not None else default_tofu_dir()
    data = TofuData(
        forget=load_tofu_split(forget, folder),
        retain=load_tofu_split(retain, folder),
        holdout=load_tofu_split(holdout, folder),
        retain_perturbed=load_tofu_split("retain_perturbed", folder),
    )
    split = {"forget": forget, "retain": retain, "holdout": holdout}
    questions = {role: {it.question for it in getattr(data, role)} for role in split}
    # An unlearning experiment whose retain set contains forget questions measures nothing; holdout questions
    # the model trained on would be members counted as non-members by the MIA (PrivLeak).
    for a, b in (("forget", "retain"), ("holdout", "forget"), ("holdout", "retain")):
        shared = questions[a] & questions[b]
        if shared:
            raise MemorylabError(f"TOFU splits {split[a]} and {split[b]} share {len(shared)} question(s), e.g. "
                                 f"{sorted(shared)[0]!r}; {a} and {b} must be disjoint.")
    # The retain truth ratio scores retain_perturbed as retain knowledge: its questions must be retain's.
    outside = {it.question for it in data.retain_perturbed} - questions["retain"]
    if outside:
        raise MemorylabError(f"TOFU split retain_perturbed has {len(outside)} question(s) not in {retain}, e.g. "
                             f"{sorted(outside)[0]!r}; the retain truth ratio needs them in the retain set.")
    return data
