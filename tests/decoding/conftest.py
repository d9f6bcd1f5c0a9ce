"""Fixtures for the speculative decoding tests: the ULD tests' corpus and tokenizer, a trained tiny target
(it ends sentences with EOS, so EOS handling is exercised), a 1-layer drafter trained on the same corpus (it
agrees with the target often but not always: both acceptance and rejection happen) and a ULD assistant."""

from __future__ import annotations

import pytest
import torch

from memorylab.decoding.uld import ULDLM
from memorylab.decoding.vocabtrim import corpus_counts
from memorylab.models.backends.hf import HFLM
from memorylab.models.drafter import Drafter
from memorylab.models.tiny import build_tiny_model
from memorylab.unlearn.uld import build_assistant, merge_assistant

# The ULD tests' corpus and tokenizer fixtures, shared rather than redefined.
from tests.uld.conftest import corpus, tiny_cfg, tokenizer, train_lm  # noqa: F401


def _trained(tokenizer, corpus, layers: int, steps: int, seed: int):
    # Session fixtures run before the per-test one-thread fixture: pin the threads here too (see tests/uld).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_lm(build_tiny_model(tiny_cfg(layers), tokenizer, seed=seed), tokenizer, corpus, steps=steps,
                        seed=seed)
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def target(tokenizer, corpus) -> HFLM:
    return HFLM(_trained(tokenizer, corpus, layers=3, steps=150, seed=0), tokenizer, batch_size=8)


@pytest.fixture(scope="session")
def drafter(tokenizer, corpus) -> Drafter:
    model = _trained(tokenizer, corpus, layers=1, steps=60, seed=1)
    return Drafter(HFLM(model, tokenizer), counts=corpus_counts(tokenizer, corpus))


@pytest.fixture(scope="session")
def uld(target, tokenizer) -> ULDLM:
    assistant = build_assistant(target.model, num_layers=1, seed=0)
    with torch.no_grad():  # nonzero LoRA B matrices: the assistant is not just the truncated target
        for name, p in assistant.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3, generator=torch.Generator().manual_seed(len(name)))
    return ULDLM(target, HFLM(merge_assistant(assistant), tokenizer, batch_size=8), alpha=1.0, r=0.3)


@pytest.fixture(scope="session")
def prompts(corpus) -> list[str]:
    """240 prompts: every sentence cut after 2..6 words, so a batch mixes lengths (left padding)."""
    return [" ".join(text.split()[:words]) for words in (2, 3, 4, 5, 6) for text in corpus]
