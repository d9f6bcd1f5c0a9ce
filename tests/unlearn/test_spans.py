"""Span-level unlearning: marked documents keep their marks through tokenizing, packing and collating, and a
span-scoped method forgets the marked values while leaving the text around them far more intact than the same
method on whole documents, at equal forgetting."""

from __future__ import annotations

import copy

import pytest
import torch

from memorylab.models.documents import MarkedText, MarkedTokens, mark
from memorylab.models.trainer import IGNORE, collate, packed_rows, tokenize_documents
from memorylab.unlearn.loop import unlearn
from memorylab.unlearn.registry import method_settings
from memorylab.unlearn.sequence import token_logprobs

# The values a span-scoped method must forget in each forget sentence: the city, the job and the year.
VALUES = ["Lagos", "baker", "1971", "Oslo", "pilot", "1964", "Quito", "nurse", "1983", "Kyoto", "carpenter", "1958"]


def test_mark_finds_every_occurrence():
    text = mark("Ada met Ada in Rome.", ["Ada", "Rome", "absent", ""])
    assert text.spans == ((0, 3), (8, 11), (15, 19))


def test_marks_survive_tokenizing_packing_and_collating(ul_tokenizer, forget_docs):
    docs = [mark(d, VALUES) for d in forget_docs] + ["Eve Okafor was born in Lima."]
    pieces = tokenize_documents(ul_tokenizer, docs, seq_len=64)
    assert all(isinstance(p, MarkedTokens) for p in pieces[:4]) and not isinstance(pieces[4], MarkedTokens)
    for piece, doc in zip(pieces[:4], docs):
        marked = ul_tokenizer.decode([t for t, s in zip(piece, piece.sensitive) if s])
        assert all(v in marked for v in VALUES if v in doc.text) and "born" not in marked
    row = next(packed_rows(pieces, seq_len=64, seed=0))
    assert isinstance(row, MarkedTokens) and len(row.sensitive) == len(row)
    batch = collate([row, pieces[0][:5]], ul_tokenizer.pad_token_id)
    assert batch["sensitive"].shape == batch["input_ids"].shape
    assert batch["sensitive"][0, : len(row)].tolist() == row.sensitive and not batch["sensitive"][1, 5:].any()
    assert "sensitive" not in collate([list(pieces[4])], ul_tokenizer.pad_token_id)  # unmarked: as before


def _losses(model, tokenizer, docs) -> tuple[float, float]:
    """Mean NLL of the sensitive tokens and of the other tokens of the marked documents."""
    batch = collate(tokenize_documents(tokenizer, docs, 64), tokenizer.pad_token_id)
    with torch.no_grad():
        logp, mask = token_logprobs(model, batch)
    sensitive = batch["sensitive"][:, 1:] & mask
    other = ~batch["sensitive"][:, 1:] & mask
    return float(-logp[sensitive].mean()), float(-logp[other].mean())


@pytest.mark.parametrize("method", ["grad_ascent", "npo"])
def test_spans_forget_the_values_and_keep_the_rest(method, trained_model, ul_tokenizer, forget_docs):
    docs = [mark(d, VALUES) for d in forget_docs]
    before = _losses(trained_model, ul_tokenizer, docs)
    results = {}
    for scope, steps in (("documents", 6), ("spans", 10)):  # about as much forgetting of the values each
        model = copy.deepcopy(trained_model)
        settings = method_settings(method, scope=scope, steps=steps, lr=2e-3, batch_size=4, seq_len=64,
                                   **({"retain_weight": 0} if method == "npo" else {}))
        unlearn(model, ul_tokenizer, docs, [], settings, seed=0, show_progress=False)
        sensitive, other = _losses(model, ul_tokenizer, docs)
        results[scope] = (sensitive - before[0], other - before[1])
    (doc_forgot, doc_other), (span_forgot, span_other) = results["documents"], results["spans"]
    assert doc_forgot > 1.0 and span_forgot > 0.8 * doc_forgot  # both forget the values, about equally
    # Per nat of forgetting on the values, the text around them moves far less with spans.
    assert span_other / span_forgot < 0.25 * (doc_other / doc_forgot)


def test_spans_need_marked_rows(trained_model, ul_tokenizer, forget_docs):
    settings = method_settings("grad_ascent", scope="spans", steps=1, batch_size=2, seq_len=64)
    with pytest.raises(ValueError, match="without marks"):
        unlearn(copy.deepcopy(trained_model), ul_tokenizer, forget_docs, [], settings, show_progress=False)


def test_documents_scope_ignores_marks(trained_model, ul_tokenizer, forget_docs):
    """A method on whole documents trains the same on marked and plain texts."""
    settings = method_settings("grad_ascent", steps=2, batch_size=2, seq_len=64)
    a, b = copy.deepcopy(trained_model), copy.deepcopy(trained_model)
    unlearn(a, ul_tokenizer, forget_docs, [], settings, seed=0, show_progress=False)
    unlearn(b, ul_tokenizer, [MarkedText(d, ((0, 5),)) for d in forget_docs], [], settings, seed=0,
            show_progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert IGNORE == -100
