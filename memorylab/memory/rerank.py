"""Rerankers: reorder retrieved memories for a query, best first, all behind one `rerank` method.

- `none` keeps the retrieval order (the baseline every reranker is compared with).
- `cross_encoder` scores each (query, memory) pair with a sentence-transformers CrossEncoder from a local folder.
- `listwise_first` is FIRST (Reddy et al. 2024, "FIRST: Faster Improved Listwise Reranking with Single Token
  Decoding"): the candidates of a window are labelled [A], [B], ... in one listwise prompt, the generator runs
  one forward pass, and the window is ordered by the first-token logits of the label tokens, instead of
  decoding a whole "[B] > [A] > ..." permutation as RankGPT does. Lists longer than a window are ranked by
  RankGPT's sliding window, from the end of the list to the front, so the best candidates bubble up.

The listwise reranker speaks only the TextGenerator protocol (memorylab.models.protocol: `count_tokens`, `clip`,
`label_logprobs`), so it runs on a local backend, a RemoteLM, a combined model or an OpenAI-compatible server
(which gives a label's log-probability when the label is among its top alternatives) alike.
"""

from __future__ import annotations

import math
import os
import string
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

from memorylab.memory.records import MemoryRecord

RERANKERS = ("none", "cross_encoder", "listwise_first")
LABELS = string.ascii_uppercase  # FIRST labels with single letters, so a window holds at most 26 candidates
HEADER = "Rank the passages by relevance to the query.\n"
PASSAGE = "[{label}] {text}\n"
FOOTER = "Query: {query}\nAnswer: ["


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


class FirstReranker:
    """FIRST listwise reranking with a sliding window; see the module docstring."""

    name = "listwise_first"

    def __init__(self, generator: Any, *, window: int = 8, stride: int = 4, max_length: int | None = None) -> None:
        if generator is None:
            raise ValueError("generator is required for the listwise_first reranker (a TextGenerator)")
        if not 2 <= window <= len(LABELS):
            raise ValueError(f"window must be between 2 and {len(LABELS)} (one letter label per passage), got {window}")
        if not 1 <= stride <= window:
            raise ValueError(f"stride must be between 1 and window ({window}), got {stride}")
        self.generator, self.window, self.stride = generator, window, stride
        context = max_length if max_length is not None else getattr(generator, "max_length", None)
        if context is None:
            raise ValueError("max_length is required for the listwise_first reranker when the generator does not "
                             "say its context length")
        self.max_length = int(context)
        self.budget = self.max_length - 1  # the start token a local model puts before every prompt
        # Checked once, here: a tokenizer that cannot spell the labels, or a window whose bare prompt cannot
        # fit the context, is a setup error, not a query error.
        generator.label_logprobs([self.prompt("", [""] * window)], LABELS[:window])

    # -- prompts ------------------------------------------------------------------------------------------
    def prompt(self, query: str, texts: Sequence[str]) -> str:
        """The listwise prompt of one window, its passages cut to fit the model's context."""
        count, clip = self.generator.count_tokens, self.generator.clip
        # A passage is one line, so a newline inside a memory cannot start a fake "[X]" label line.
        texts = [" ".join(t.split()) for t in texts]
        # Queries are short; the cap only keeps a pathological one from leaving no room for the passages.
        query = clip([" ".join(query.split())], self.budget // 4)[0]
        lengths = count(texts)
        skeleton = self._render(query, [""] * len(texts))
        cap = fair_cap(lengths, self.budget - count([skeleton])[0])
        while True:
            # The passages are cut by tokens and the whole prompt counted again: pieces tokenized apart may
            # tokenize differently within the one string the model reads, so the cap shrinks until it fits.
            cut = [text if n <= cap else clipped if cap > 0 else ""
                   for text, n, clipped in zip(texts, lengths, clip(texts, max(cap, 0)))]
            prompt = self._render(query, cut)
            over = count([prompt])[0] - self.budget
            if over <= 0:
                return prompt
            if cap <= 0:
                raise ValueError(f"window ({len(texts)} passages) does not fit the model's {self.max_length}-"
                                 "token context even with empty passages; lower window")
            cap = max(0, cap - math.ceil(over / len(texts)))

    @staticmethod
    def _render(query: str, texts: Sequence[str]) -> str:
        body = "".join(PASSAGE.format(label=LABELS[i], text=t) for i, t in enumerate(texts))
        return HEADER + body + FOOTER.format(query=query)

    # -- ranking ------------------------------------------------------------------------------------------
    def rerank_many(self, queries: Sequence[str], record_lists: Sequence[Sequence[MemoryRecord]],
                    top_k: int | None = None) -> list[list[MemoryRecord]]:
        """Rerank several queries at once. The windows of one query depend on each other (each sees what the
        previous one moved up), so they run in turn; the queries advance in lockstep, one batched call per
        step."""
        if len(queries) != len(record_lists):
            raise ValueError(f"queries ({len(queries)}) and record_lists ({len(record_lists)}) differ in length")
        orders = [list(records) for records in record_lists]
        plans = [sliding_windows(len(o), self.window, self.stride) for o in orders]
        for step in range(max((len(p) for p in plans), default=0)):
            jobs = [(q, *plan[step]) for q, plan in enumerate(plans) if step < len(plan)]
            prompts = [self.prompt(queries[q], [r.text for r in orders[q][s:e]]) for q, s, e in jobs]
            scores = self.generator.label_logprobs(prompts, LABELS[: self.window])
            for (q, s, e), window_scores in zip(jobs, scores):
                items = orders[q][s:e]
                # Ties keep the current order: rankings stay deterministic whatever the scores' precision.
                ranked = sorted(range(len(items)), key=lambda i: (-window_scores[i], i))
                orders[q][s:e] = [items[i] for i in ranked]
        return [_cut(o, top_k) for o in orders]

    def rerank(self, query: str, records: Sequence[MemoryRecord], top_k: int | None = None) -> list[MemoryRecord]:
        return self.rerank_many([query], [records], top_k)[0]


def make_reranker(name: str, *, generator: Any = None, model_path: str | None = None, window: int = 8,
                  stride: int = 4, max_length: int | None = None, device: str = "cpu") -> Reranker:
    """The reranker called `name`. `generator` (a TextGenerator) serves listwise_first, whose prompt is cut to
    `max_length` tokens (default: the generator's max_length); `model_path` and `device` serve cross_encoder."""
    if name == "none":
        return NoReranker()
    if name == "cross_encoder":
        return CrossEncoderReranker(model_path, device=device)
    if name == "listwise_first":
        return FirstReranker(generator, window=window, stride=stride, max_length=max_length)
    raise ValueError(f"unknown reranker {name!r}; expected one of {', '.join(RERANKERS)}")
