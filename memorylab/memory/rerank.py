"""Rerankers: reorder retrieved memories for a query, best first, all behind one `rerank` method.

- `none` keeps the retrieval order (the baseline every reranker is compared with).
- `cross_encoder` scores each (query, memory) pair with a sentence-transformers CrossEncoder from a local folder.
- `listwise_first` is FIRST (Reddy et al. 2024, "FIRST: Faster Improved Listwise Reranking with Single Token
  Decoding"): the candidates of a window are labelled [A], [B], ... in one listwise prompt, the generator runs
  one forward pass, and the window is ordered by the first-token logits of the label tokens, instead of
  decoding a whole "[B] > [A] > ..." permutation as RankGPT does. Lists longer than a window are ranked by
  RankGPT's sliding window, from the end of the list to the front, so the best candidates bubble up.

The listwise reranker speaks only the LM protocol (`encode`, `next_token_logits`), so it runs on a local
backend, a RemoteLM or any combined model alike.
"""

from __future__ import annotations

import math
import os
import string
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import torch

from memorylab.memory.records import MemoryRecord

RERANKERS = ("none", "cross_encoder", "listwise_first")
LABELS = string.ascii_uppercase  # FIRST labels with single letters, so a window holds at most 26 candidates
HEADER = "Rank the passages by relevance to the query.\n"
PASSAGE = "[{label}] {text}\n"
FOOTER = "Query: {query}\nAnswer: ["
LABEL_CONTEXT = "Answer: ["  # where the label logits are read: each label must be one token right after it


@runtime_checkable
class Reranker(Protocol):
    name: str

    def rerank(self, query: str, records: Sequence[MemoryRecord], top_k: int | None = None) -> list[MemoryRecord]:
        """The records reordered best first, cut to top_k when given."""


def _cut(records: list[MemoryRecord], top_k: int | None) -> list[MemoryRecord]:
    if top_k is None:
        return records
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be a non-negative integer or None, got {top_k!r}")
    return records[:top_k]


class NoReranker:
    """Keeps the retrieval order."""

    name = "none"

    def rerank(self, query: str, records: Sequence[MemoryRecord], top_k: int | None = None) -> list[MemoryRecord]:
        return _cut(list(records), top_k)


class CrossEncoderReranker:
    """Scores every (query, memory text) pair with a cross-encoder; ties keep the retrieval order."""

    name = "cross_encoder"

    def __init__(self, model_path: str | os.PathLike | None, *, device: str = "cpu", batch_size: int = 32) -> None:
        if model_path is None:
            raise ValueError("model_path is required for the cross_encoder reranker (a local cross-encoder folder)")
        if not Path(model_path).exists():
            raise FileNotFoundError(f"model_path {str(model_path)!r} does not exist; the cross_encoder reranker "
                                    "loads a cross-encoder from a local folder")
        # Offline by design: a typo must not turn into a hub download attempt that hangs without network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import CrossEncoder
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.model = CrossEncoder(str(model_path), device=device, local_files_only=True)
        self.model_path = str(model_path)
        self.batch_size = batch_size

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        out = self.model.predict([(query, t) for t in texts], batch_size=self.batch_size, show_progress_bar=False,
                                 convert_to_numpy=True)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.ndim != 1:
            raise ValueError(f"the cross-encoder at model_path {self.model_path!r} gives {out.shape[1]} scores per "
                             "pair; a reranker needs one (num_labels=1)")
        return [float(s) for s in out]

    def rerank(self, query: str, records: Sequence[MemoryRecord], top_k: int | None = None) -> list[MemoryRecord]:
        records = list(records)
        scores = self.scores(query, [r.text for r in records])
        order = sorted(range(len(records)), key=lambda i: (-scores[i], i))
        return _cut([records[i] for i in order], top_k)


def sliding_windows(n: int, window: int, stride: int) -> list[tuple[int, int]]:
    """The (start, end) spans RankGPT/FIRST rank in turn: the last `window` items first, then `stride` items
    further to the front each time, until a window starts at 0. Unlike RankGPT's reference loop, the front
    is always covered even when (n - window) is not a multiple of the stride; spans of one item are skipped."""
    spans, end = [], n
    while end > 0:
        start = max(0, end - window)
        if end - start >= 2:
            spans.append((start, end))
        if start == 0:
            break
        end -= stride
    return spans


def fair_cap(lengths: Sequence[int], budget: int) -> int:
    """The largest per-passage token cap c with sum(min(len, c)) <= budget (max-min fair truncation): short
    passages stay whole and give their unused share to the long ones."""
    if sum(lengths) <= budget:
        return max(lengths, default=0)
    remaining, left = budget, len(lengths)
    for n in sorted(lengths):
        share = remaining // left
        if n > share:
            return share
        remaining -= n
        left -= 1
    return max(lengths)


def label_token_ids(generator: Any, labels: Sequence[str]) -> list[int]:
    """The token id of each label where the model reads it, right after "Answer: [". A label that the
    tokenizer splits, or merges with the bracket, has no single logit to rank by, so it is refused."""
    base = generator.encode([LABEL_CONTEXT])[0]
    ids = []
    for label, tokens in zip(labels, generator.encode([LABEL_CONTEXT + label for label in labels])):
        if len(tokens) != len(base) + 1 or list(tokens[: len(base)]) != list(base):
            raise ValueError(f"label {label!r} is not a single token after {LABEL_CONTEXT!r} for this generator's "
                             "tokenizer, so listwise_first cannot read its logit")
        ids.append(int(tokens[-1]))
    if len(set(ids)) != len(ids):
        raise ValueError("the labels' token ids are not distinct for this generator's tokenizer")
    return ids


class FirstReranker:
    """FIRST listwise reranking with a sliding window; see the module docstring."""

    name = "listwise_first"

    def __init__(self, generator: Any, *, window: int = 8, stride: int = 4, max_length: int | None = None,
                 batch_size: int | None = None) -> None:
        if generator is None:
            raise ValueError("generator is required for the listwise_first reranker (an LM-protocol model)")
        if not 2 <= window <= len(LABELS):
            raise ValueError(f"window must be between 2 and {len(LABELS)} (one letter label per passage), got {window}")
        if not 1 <= stride <= window:
            raise ValueError(f"stride must be between 1 and window ({window}), got {stride}")
        max_length = max_length if max_length is not None else getattr(generator, "max_length", None)
        if max_length is None:
            raise ValueError("max_length is required for listwise_first when the generator has no max_length")
        self.generator, self.window, self.stride, self.max_length = generator, window, stride, int(max_length)
        self.batch_size = batch_size or getattr(generator, "batch_size", 16)
        # Tiny models train every document after a start token; a prompt without it reads as mid-document.
        self.start = [generator.start_id] if getattr(generator, "start_id", None) is not None else []
        self.pad_id = getattr(generator, "pad_id", 0)
        # Checked once, here: a tokenizer that cannot spell the labels, or a window whose bare prompt cannot
        # fit the context, is a setup error, not a query error.
        self.label_ids = label_token_ids(generator, LABELS[:window])
        self.prompt("", [""] * window)

    # -- prompts ------------------------------------------------------------------------------------------
    def prompt(self, query: str, texts: Sequence[str]) -> list[int]:
        """Token ids of the listwise prompt for one window, passages truncated to fit the model's context."""
        enc, dec = self.generator.encode, self.generator.decode
        # A passage is one line, so a newline inside a memory cannot start a fake "[X]" label line.
        texts = [" ".join(t.split()) for t in texts]
        # Queries are short; the cap only keeps a pathological one from leaving no room for the passages.
        query = " ".join(query.split())
        query_ids = enc([query])[0]
        if len(query_ids) > self.max_length // 4:
            query = dec([query_ids[: self.max_length // 4]])[0]
        ids = [list(t) for t in enc(texts)]
        skeleton = self._render(query, [""] * len(texts))
        cap = fair_cap([len(t) for t in ids], self.max_length - len(self.start) - len(enc([skeleton])[0]))
        while True:
            # Token cuts are decoded and the whole prompt re-encoded: pieces encoded apart would tokenize
            # differently from the one string the model is trained to read. Merges can shift the count by a
            # few tokens, so the cap shrinks until the prompt fits.
            cut = [text if len(t) <= cap else dec([t[:cap]])[0] if cap > 0 else "" for text, t in zip(texts, ids)]
            prompt = self.start + list(enc([self._render(query, cut)])[0])
            over = len(prompt) - self.max_length
            if over <= 0:
                return prompt
            if cap <= 0:
                raise ValueError(f"window ({len(texts)} passages) does not fit the model's {self.max_length}-token "
                                 "context even with empty passages; lower window")
            cap = max(0, cap - math.ceil(over / len(ids)))

    @staticmethod
    def _render(query: str, texts: Sequence[str]) -> str:
        body = "".join(PASSAGE.format(label=LABELS[i], text=t) for i, t in enumerate(texts))
        return HEADER + body + FOOTER.format(query=query)

    # -- scoring ------------------------------------------------------------------------------------------
    def label_logits(self, prompts: Sequence[list[int]], sizes: Sequence[int]) -> list[list[float]]:
        """Next-token logits of the first `size` labels for each prompt, batched and left-padded."""
        out: list[list[float]] = []
        for at in range(0, len(prompts), self.batch_size):
            chunk = prompts[at: at + self.batch_size]
            width = max(len(p) for p in chunk)
            ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, p in enumerate(chunk):
                ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
                mask[row, width - len(p):] = 1
            # Positions count real tokens only (as in decoding/loop.py), so a padded row reads as it would alone.
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits, past = self.generator.next_token_logits(ids, mask, None, position_ids=positions)
            # A RemoteLM keeps a per-call session in its actor; one forward pass needs no cache afterwards.
            if past is not None and hasattr(self.generator, "end_session"):
                self.generator.end_session(past)
            logits = torch.as_tensor(logits).float().cpu()
            for row, size in enumerate(sizes[at: at + len(chunk)]):
                out.append(logits[row, self.label_ids[:size]].tolist())
        return out

    # -- ranking ------------------------------------------------------------------------------------------
    def rerank_many(self, queries: Sequence[str], record_lists: Sequence[Sequence[MemoryRecord]],
                    top_k: int | None = None) -> list[list[MemoryRecord]]:
        """Rerank several queries at once. The windows of one query depend on each other (each sees what the
        previous one moved up), so they run in turn; the queries advance in lockstep, one batched forward
        pass per step."""
        if len(queries) != len(record_lists):
            raise ValueError(f"queries ({len(queries)}) and record_lists ({len(record_lists)}) differ in length")
        orders = [list(records) for records in record_lists]
        plans = [sliding_windows(len(o), self.window, self.stride) for o in orders]
        for step in range(max((len(p) for p in plans), default=0)):
            jobs = [(q, *plan[step]) for q, plan in enumerate(plans) if step < len(plan)]
            prompts = [self.prompt(queries[q], [r.text for r in orders[q][s:e]]) for q, s, e in jobs]
            scores = self.label_logits(prompts, [e - s for _, s, e in jobs])
            for (q, s, e), window_scores in zip(jobs, scores):
                items = orders[q][s:e]
                # Ties keep the current order: rankings stay deterministic whatever the logits' precision.
                ranked = sorted(range(len(items)), key=lambda i: (-window_scores[i], i))
                orders[q][s:e] = [items[i] for i in ranked]
        return [_cut(o, top_k) for o in orders]

    def rerank(self, query: str, records: Sequence[MemoryRecord], top_k: int | None = None) -> list[MemoryRecord]:
        return self.rerank_many([query], [records], top_k)[0]


def make_reranker(name: str, *, generator: Any = None, model_path: str | None = None, window: int = 8,
                  stride: int = 4, max_length: int | None = None, device: str = "cpu") -> Reranker:
    """The reranker called `name`. `generator` (an LM-protocol model) serves listwise_first, whose prompt
    is cut to `max_length` tokens (default: the generator's max_length); `model_path` and `device` serve
    cross_encoder."""
    if name == "none":
        return NoReranker()
    if name == "cross_encoder":
        return CrossEncoderReranker(model_path, device=device)
    if name == "listwise_first":
        return FirstReranker(generator, window=window, stride=stride, max_length=max_length)
    raise ValueError(f"unknown reranker {name!r}; expected one of {', '.join(RERANKERS)}")
