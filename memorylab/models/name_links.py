"""How the reader head ties a person's name across the prompt: each token's capitalised word, numbered (what
its attention links across lines), the hop's second step from a nickname's line to every line about that person,
and whether the memories name the person the question asks about."""

from __future__ import annotations

import re

import torch
from torch.nn import functional as F

from memorylab.models.prompt_regions import MEMORY, QUESTION

NAME_WORD = re.compile(r"\b[A-Z][\w-]*")


def name_words(prompt: str, offsets: list[tuple[int, int]], regions: list[int]) -> list[int]:
    """Each token's capitalised word (a name's part: "Peggy", "Smith", "Sandoval"), numbered by its text within the
    prompt, 0 for tokens of no such word. The head's attention links tokens of the same name across lines and the
    question: what ties "Peggy Smith works for ..." to "We call Peggy Smith the sleepy badger." when the question
    asks about the badger. By the word, not the token: a name first in its line and the same name after a space
    are different tokens to byte-level BPE."""
    word_at: dict[int, str] = {}
    for found in NAME_WORD.finditer(prompt):
        for at in range(found.start(), found.end()):
            word_at[at] = found.group().lower()
    numbers: dict[str, int] = {}
    out = []
    for (a, b), region in zip(offsets, regions):
        text = prompt[a:b]
        at = a + len(text) - len(text.lstrip())
        word = word_at.get(at) if region in (MEMORY, QUESTION) and at < b else None
        out.append(0 if word is None else numbers.setdefault(word, len(numbers) + 1))
    return out


def named_lines(read: torch.Tensor, names: torch.Tensor, lines: torch.Tensor) -> torch.Tensor:
    """(B, T): for each memory token, the share of the hop's attention `read` (B, T) that fell on tokens of the
    names its line mentions (each name word once per line), 0 elsewhere. A nickname question's hop lands on the
    line that taught the nickname, on the name there; every line about that person then scores higher, whatever
    the name's tokens. A line of a namesake (one shared word) gets part of it."""
    n, count = int(names.max()) + 1, int(lines.max()) + 1
    if count <= 0 or n <= 1:
        return torch.zeros_like(read)
    words = F.one_hot(names, n)[..., 1:].to(read.dtype)  # (B, T, N-1): name 0 is no name
    on_line = F.one_hot(lines.clamp(min=0), count).to(read.dtype) * (lines >= 0)[..., None]  # (B, T, L)
    mentions = (on_line.transpose(1, 2) @ words).clamp(max=1.0)  # (B, L, N-1): line l mentions name word n
    drawn = torch.einsum("bt,btn->bn", read, words)  # the hop's attention on each name word
    per_line = mentions @ drawn[..., None]  # (B, L, 1)
    return (on_line @ per_line).squeeze(-1)


def asked_names_found(names: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """(B, 2): how many distinct capitalised words of the question some memory line also has, and how many none
    has (DrQA's exact match, over the whole prompt). Both are needed: a nickname question names nobody (its
    missing words are only "Question", "What" and the like) and one about a person nobody mentioned misses the
    name's words too."""
    n = int(names.max()) + 1
    if n <= 1:
        return torch.zeros((names.shape[0], 2), device=names.device)
    words = F.one_hot(names, n)[..., 1:]
    asked = (words * (regions == QUESTION)[..., None]).amax(dim=1)
    told = (words * (regions == MEMORY)[..., None]).amax(dim=1)
    return torch.stack([(asked * told).sum(dim=-1), (asked * (1 - told)).sum(dim=-1)], dim=-1).float()
