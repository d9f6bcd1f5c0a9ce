import itertools
import json
import math

import pytest
import torch
from transformers import LlamaForCausalLM

import memorylab.models.trainer as trainer
from memorylab.models.documents import Example, ExampleTokens
from memorylab.models.tiny import build_tiny_model
from memorylab.models.trainer import lr_lambda, packed_rows, tokenize_documents, train_causal_lm
from memorylab.schema.common import TinyModelConfig, TrainConfig

SMALL = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                        max_position_embeddings=64)


# -- packing --------------------------------------------------------------------------------------------
def _docs(lengths):
    """Document i is `lengths[i]` copies of token i, so a row shows which documents it holds."""
    return [[i] * n for i, n in enumerate(lengths)]


def _split_into_docs(row):
    return [list(g) for _, g in itertools.groupby(row)]


def test_packed_rows_keep_short_documents_whole_and_fit():
    lengths = [3, 5, 8, 1, 7, 2, 8, 4, 6, 2, 5, 3]
    docs, seq_len = _docs(lengths), 8
    rows = list(itertools.islice(packed_rows(docs, seq_len, seed=1), 60))
    assert all(0 < len(r) <= seq_len for r in rows)
    seen, epoch_ends = [], set()
    for n, r in enumerate(rows):
        for piece in _split_into_docs(r):
            assert piece == docs[piece[0]]  # a whole document, never a part of one
            seen.append(piece[0])
        if len(seen) % len(docs) == 0:
            epoch_ends.add(n)
    # Every epoch holds every document exactly once.
    for epoch in range(3):
        assert sorted(seen[epoch * len(docs):(epoch + 1) * len(docs)]) == list(range(len(docs)))
    # Greedy packing: within an epoch a row is closed only because the next document would not fit.
    for n, (r, nxt) in enumerate(zip(rows, rows[1:])):
        if n not in epoch_ends:
            assert len(r) + len(docs[nxt[0]]) > seq_len


def test_packed_rows_are_deterministic_per_seed():
    docs = _docs([2, 3, 4, 5, 6, 1, 2, 3, 7, 1])
    take = lambda s: list(itertools.islice(packed_rows(docs, 8, seed=s), 40))  # noqa: E731
    assert take(3) == take(3)
    assert take(3) != take(4)


def test_long_documents_are_cut_to_rows(tokenizer):
    long_doc = " ".join(["Alice was born in Paris"] * 20)
    pieces = tokenize_documents(tokenizer, [long_doc, "Bob"], seq_len=16)
    assert all(len(p) <= 16 for p in pieces)
    assert pieces[0][0] == tokenizer.bos_token_id and pieces[-1][-1] == tokenizer.eos_token_id
    whole = [tokenizer.bos_token_id] + tokenizer(long_doc, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert sum(pieces[:-1], []) == whole
    rows = list(itertools.islice(packed_rows(pieces, 16, seed=0), 30))
    assert all(len(r) <= 16 for r in rows)


def test_an_example_is_one_row_with_its_prompt_unscored(tokenizer):
    """TOFU's protocol: a QA pair is one example, padded not packed, and only its answer's tokens are scored
    (the prompt's labels are ignored, counted as TOFU counts question tokens: the prompt tokenized alone)."""
    examples = [Example("Question: Where was Alice born?\nAnswer:", " Paris"),
                Example("Question: What does Bob do?\nAnswer:", " He works as a pilot in Lima")]
    pieces = tokenize_documents(tokenizer, examples + ["Carol was born in Oslo"], seq_len=64)
    assert [type(p) for p in pieces] == [ExampleTokens, ExampleTokens, list]
    for piece, example in zip(pieces, examples):
        whole = tokenizer(example.text, add_special_tokens=False)["input_ids"]
        assert piece == [tokenizer.bos_token_id] + whole + [tokenizer.eos_token_id]
        assert piece.context == 1 + len(tokenizer(example.prompt, add_special_tokens=False)["input_ids"])
        answer = tokenizer.decode(piece[piece.context:-1])
        assert answer.strip() == example.answer.strip()
    # Packing leaves examples alone; plain texts are still packed (three short ones share a row).
    rows = list(itertools.islice(packed_rows(pieces[:2] + [pieces[2]] * 3, 64, seed=0), 3))
    assert sorted(len(r) for r in rows if isinstance(r, ExampleTokens)) == sorted(len(p) for p in pieces[:2])
    assert [len(r) for r in rows if not isinstance(r, ExampleTokens)] == [3 * len(pieces[2])]
    batch = trainer.collate([pieces[0], pieces[2]], pad_id=tokenizer.pad_token_id)
    n = len(pieces[0])
    assert (batch["labels"][0, :pieces[0].context] == trainer.IGNORE).all()
    assert batch["labels"][0, pieces[0].context:n].tolist() == pieces[0][pieces[0].context:]
    assert (batch["labels"][0, n:] == trainer.IGNORE).all()
    assert batch["labels"][1, :len(pieces[2])].tolist() == pieces[2]  # a plain text: every token


def test_a_long_example_is_cut_to_its_row_and_a_prompt_filling_it_is_refused(tokenizer):
    long = Example("Alice: ", " ".join(["Alice was born in Paris"] * 10))
    (piece,) = tokenize_documents(tokenizer, [long], seq_len=16)
    assert len(piece) == 16 and piece.context == 7  # BOS and the prompt's 6 tokens, then the answer's first 9
    with pytest.raises(ValueError, match="leaves no room for its answer in rows of seq_len 8"):
        tokenize_documents(tokenizer, [Example("Alice was born in Paris", " x")], seq_len=8)


# -- schedule -------------------------------------------------------------------------------------------
def test_lr_warmup_then_cosine_to_min():
    f = lr_lambda(TrainConfig(steps=10, warmup_steps=2, min_lr_ratio=0.1))
    assert f(0) == pytest.approx(0.5)
    assert f(1) == pytest.approx(1.0)
    assert f(2) == pytest.approx(1.0)  # the cosine starts at the peak
    assert f(6) == pytest.approx(0.1 + 0.9 * 0.5)  # half way: cos(pi/2) = 0
    assert f(4) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert f(10) == pytest.approx(0.1)
    assert f(50) == pytest.approx(0.1)  # stays at the floor past the end
    values = [f(s) for s in range(2, 11)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_lr_without_warmup_starts_at_peak():
    f = lr_lambda(TrainConfig(steps=4, warmup_steps=0, min_lr_ratio=0.0))
    assert f(0) == pytest.approx(1.0)
    assert f(2) == pytest.approx(0.5)
    assert f(4) == pytest.approx(0.0, abs=1e-12)


# -- training -------------------------------------------------------------------------------------------
def _cfg(**kw):
    base = dict(steps=20, batch_size=4, seq_len=32, lr=1e-2, warmup_steps=2, min_lr_ratio=0.1,
                checkpoint_every=100)
    return TrainConfig(**{**base, **kw})


def test_short_run_lowers_the_loss(tokenizer, corpus, tmp_path):
    model = build_tiny_model(SMALL, tokenizer, 0)
    result = train_causal_lm(model, tokenizer, corpus, _cfg(), tmp_path, seed=0, show_progress=False)
    assert result.steps == 20 and len(result.losses) == 20 and result.resumed_from is None
    first, last = result.losses[0], sum(result.losses[-3:]) / 3
    assert math.isfinite(last) and last < 0.7 * first, result.losses
    assert result.final_dir == tmp_path / "final"
    assert (tmp_path / "final" / "config.json").exists()
    assert (tmp_path / "final" / "tokenizer_config.json").exists()
    log = json.loads((tmp_path / "final" / "train_log.json").read_text())
    assert log["losses"] == result.losses and log["steps"] == 20


def test_no_documents_is_an_error(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="no training documents"):
        train_causal_lm(build_tiny_model(SMALL, tokenizer, 0), tokenizer, [], _cfg(), tmp_path, seed=0,
                        show_progress=False)


def _step_folders(folder):
    return sorted(p.name for p in (folder / "checkpoints").iterdir())


def test_resume_after_interrupt_gives_identical_weights(tokenizer, corpus, tmp_path, monkeypatch):
    cfg = _cfg(steps=7, checkpoint_every=2, batch_size=2)
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"

    a = train_causal_lm(build_tiny_model(SMALL, tokenizer, 0), tokenizer, corpus, cfg, a_dir, seed=5,
                        show_progress=False)
    # Checkpoints at 2, 4, 6 (never at the final step); only the newest two are kept.
    assert _step_folders(a_dir) == ["step-4", "step-6"]

    # Interrupt run B while it computes step index 5, after the checkpoint at 4 but before the one at 6.
    calls = {"n": 0}
    real_collate = trainer.collate

    def interrupting_collate(rows, pad_id):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real_collate(rows, pad_id)

    monkeypatch.setattr(trainer, "collate", interrupting_collate)
    with pytest.raises(KeyboardInterrupt):
        train_causal_lm(build_tiny_model(SMALL, tokenizer, 0), tokenizer, corpus, cfg, b_dir, seed=5,
                        show_progress=False)
    monkeypatch.setattr(trainer, "collate", real_collate)
    assert _step_folders(b_dir) == ["step-2", "step-4"]
    assert not (b_dir / "final").exists()

    # A crash in the middle of a save leaves only a dot-tmp folder; resume must not trust it.
    junk = b_dir / "checkpoints" / ".step-6.tmp"
    junk.mkdir()
    (junk / "trainer_state.pt").write_bytes(b"half written")

    # Resume from a model built with another seed: every weight must come from the checkpoint.
    b = train_causal_lm(build_tiny_model(SMALL, tokenizer, 99), tokenizer, corpus, cfg, b_dir, seed=5,
                        show_progress=False)
    assert b.resumed_from == 4
    assert b.losses == a.losses
    assert _step_folders(b_dir) == ["step-4", "step-6"]
    wa = LlamaForCausalLM.from_pretrained(a.final_dir).state_dict()
    wb = LlamaForCausalLM.from_pretrained(b.final_dir).state_dict()
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert json.loads((b.final_dir / "train_log.json").read_text())["resumed_from"] == 4


def test_checkpoint_retention_and_ignored_tmp(tokenizer, corpus, tmp_path):
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    # Leftovers of crashed saves: a tmp folder and a step folder without trainer state.
    (ckpts / ".step-8.tmp").mkdir()
    (ckpts / "step-9").mkdir()
    assert trainer._latest_checkpoint(ckpts) is None
    cfg = _cfg(steps=5, checkpoint_every=1, batch_size=1)
    result = train_causal_lm(build_tiny_model(SMALL, tokenizer, 0), tokenizer, corpus, cfg, tmp_path,
                             seed=0, show_progress=False)
    assert result.resumed_from is None
    complete = [p.name for p in ckpts.iterdir() if (p / "trainer_state.pt").exists()]
    assert len(complete) <= trainer.KEEP_CHECKPOINTS
    assert trainer._latest_checkpoint(ckpts).name == "step-4"
