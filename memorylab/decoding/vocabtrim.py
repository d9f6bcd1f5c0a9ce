"""VocabTrim (Goel et al. 2025): the drafter's LM head over only the N tokens the target uses most.

A drafter's head is a large part of its cost (for the tiny drafter, 128 x 2048 of its ~0.5 M multiply-adds a
token), yet the target rarely emits most of the vocabulary. Trimming the head to the N most frequent tokens
makes every drafting step cheaper; a drafted token is always one of those N (mapped back to target ids), and
when the target wants a token outside them the draft simply fails verification and the target's own token is
emitted, so the output never changes, only the acceptance rate. The input embeddings stay whole: any target
token can be fed to the drafter.

Frequencies come from a corpus or, as the paper does, from the target's own generations on calibration
prompts (what the drafter must predict is what the target says). They are saved beside the drafter
(`token_counts.json`) so that any N can be chosen at load time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

COUNTS_FILE = "token_counts.json"


def token_counts(id_lists: Iterable[Sequence[int]], vocab_size: int) -> np.ndarray:
    """How often each id occurs, (vocab_size,) int64."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for ids in id_lists:
        np.add.at(counts, np.asarray(ids, dtype=np.int64), 1)
    return counts


def corpus_counts(tokenizer: Any, texts: Sequence[str]) -> np.ndarray:
    """Token frequencies of a corpus, EOS counted once per text (every document ends with one in training)."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return token_counts((list(i) + eos for i in ids), len(tokenizer))


def generation_counts(lm: Any, prompts: Sequence[str], max_new_tokens: int = 48) -> np.ndarray:
    """Token frequencies of the target's own greedy continuations of `prompts` (the paper's calibration)."""
    from memorylab.models.protocol import GenerationParams

    outputs = lm.generate(list(prompts), GenerationParams(max_new_tokens=max_new_tokens))
    return corpus_counts(lm.tokenizer, outputs)


def kept_ids(counts: np.ndarray, n: int, always: Sequence[int] = ()) -> torch.Tensor:
    """The ids of the trimmed vocabulary, ascending: `always` (e.g. EOS, which ends every generation) and
    then the most frequent ids (ties by id, so the choice is deterministic) up to n in all."""
    if not 1 <= n:
        raise ValueError(f"the trimmed vocabulary needs at least one token, got {n}")
    always = [int(i) for i in dict.fromkeys(always) if i is not None]
    if len(always) > n:
        raise ValueError(f"{len(always)} ids must always be kept, more than the {n} asked for")
    order = np.lexsort((np.arange(len(counts)), -np.asarray(counts)))  # by count descending, then id
    chosen = set(always)
    for i in order:
        if len(chosen) >= n:
            break
        chosen.add(int(i))
    return torch.tensor(sorted(chosen), dtype=torch.long)


def save_counts(folder: str | Path, counts: np.ndarray, source: str) -> Path:
    """Write the counts beside a drafter; `source` says where they came from (corpus, generations)."""
    path = Path(folder) / COUNTS_FILE
    path.write_text(json.dumps({"source": source, "counts": [int(c) for c in counts]}))
    return path


def load_counts(folder: str | Path) -> np.ndarray:
    path = Path(folder) / COUNTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{folder} has no {COUNTS_FILE}: VocabTrim needs token frequencies; write them "
                                "with memorylab.decoding.vocabtrim.save_counts (corpus_counts or generation_counts)")
    return np.asarray(json.loads(path.read_text())["counts"], dtype=np.int64)
