"""Fixtures for the decoding tests: a ~50-sentence corpus and its BPE tokenizer; for ULD, a tiny Llama with large
random weights (sharply peaked predictions, so batching and cache bugs show) and a small trained target whose
forget sentences it has memorised; for speculative decoding, a trained tiny target (it ends sentences with EOS,
so EOS handling is exercised), a 1-layer drafter trained on the same corpus (it agrees with the target often
but not always: both acceptance and rejection happen) and a ULD assistant."""

from __future__ import annotations

import itertools

import pytest
import torch

from memorylab.decoding.drafter import Drafter
from memorylab.decoding.uld import ULDLM
from memorylab.decoding.vocabtrim import corpus_counts
from memorylab.models.backends.hf import HFLM
from memorylab.models.tiny import build_tiny_model
from memorylab.models.tokenizer import train_bpe_tokenizer
from memorylab.models.trainer import collate, packed_rows, tokenize_documents
from memorylab.schema.common import TinyModelConfig
from memorylab.unlearn.uld_assistant import build_assistant, merge_assistant

NAMES = ["Alice", "Bob", "Carol", "Dmitri", "Eve", "Farah", "Gustav", "Hiroko"]
CITIES = ["Paris", "Lagos", "Oslo", "Lima", "Kyoto", "Quito"]
JOBS = ["baker", "pilot", "nurse", "carpenter", "poet", "judge"]


def make_corpus() -> list[str]:
    # Each person: one birthplace and one job, 8 x 6 = 48 sentences with distinct facts.
    texts = []
    for i, (name, city) in enumerate(itertools.product(NAMES, CITIES)):
        job = JOBS[(i * 5 + len(name)) % len(JOBS)]
        texts.append(f"{name} of {city} works as a {job} since {1950 + i}.")
    return texts


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return make_corpus()


@pytest.fixture(scope="session")
def forget_docs(corpus) -> list[str]:
    return corpus[::6]  # 8 sentences, one per name


@pytest.fixture(scope="session")
def retain_docs(corpus) -> list[str]:
    return [t for i, t in enumerate(corpus) if i % 6]


@pytest.fixture(scope="session")
def tokenizer(corpus):
    return train_bpe_tokenizer(corpus, vocab_size=300)


def tiny_cfg(layers: int = 3) -> TinyModelConfig:
    return TinyModelConfig(hidden_size=32, num_layers=layers, num_heads=4, num_kv_heads=2, intermediate_size=64,
                           max_position_embeddings=64, vocab_size=300)


def random_model(tokenizer, seed: int, layers: int = 3, std: float = 0.3):
    model = build_tiny_model(tiny_cfg(layers), tokenizer, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model.eval()


@pytest.fixture(scope="session")
def random_target(tokenizer):
    return random_model(tokenizer, seed=0)


@pytest.fixture(scope="session")
def random_assistant(tokenizer):
    # A different random model with the same tokenizer: the combination must differ from the target.
    return random_model(tokenizer, seed=1, layers=1, std=0.5)


def train_lm(model, tokenizer, docs, steps: int, lr: float = 3e-3, batch_size: int = 8, seed: int = 0):
    rows = packed_rows(tokenize_documents(tokenizer, docs, 64), 64, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    torch.manual_seed(seed)
    model.train()
    for _ in range(steps):
        loss = model(**collate([next(rows) for _ in range(batch_size)], tokenizer.pad_token_id)).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="session")
def trained_target(tokenizer, corpus):
    """A tiny target trained on all 48 sentences (forget and retain alike)."""
    # Session fixtures are set up before the module's one-thread fixture, so pin the thread count here too:
    # two threads on two busy cores train this model many times slower than one.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_tiny_model(tiny_cfg(3), tokenizer, seed=0)
        return train_lm(model, tokenizer, corpus, steps=150)
    finally:
        torch.set_num_threads(before)


def _trained(tokenizer, corpus, layers: int, steps: int, seed: int):
    # Session fixtures run before the per-test one-thread fixture: pin the threads here too (as trained_target does).
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
