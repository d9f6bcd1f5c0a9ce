"""LogitsLM: the whole LM protocol built on two primitives, full-sequence logits and next-token logits.

Scoring (token log-probs, their moments, log-likelihoods) and batched generation are the same whether the
logits come from one transformers model (HFLM) or are combined from several (ULD: target minus assistant), so
they are written once here; a backend supplies `sequence_logits` and `next_token_logits`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch

from memorylab.decoding.drafter import drafter_for
from memorylab.decoding.loop import decode, left_padded, sampling_generator, stop_token_ids
from memorylab.models.protocol import Completion, GenerationParams, TokenLogprob
from memorylab.models.token_budget import TokenBudget


class LogitsLM(TokenBudget):
    """Subclasses set tokenizer, device, batch_size, start_id, pad_id and max_length, and implement the two
    primitives below."""

    tokenizer: Any
    device: torch.device
    batch_size: int
    start_id: int
    pad_id: int
    max_length: int

    def sequence_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V) for right-padded ids."""
        raise NotImplementedError

    def next_token_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                          past: Any = None, position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """Logits (B, V) of the next token and the updated cache."""
        raise NotImplementedError

    # Speculative decoding (memorylab.decoding.speculative) needs a third primitive and a drafter.
    drafter: Any = None  # a memorylab.decoding.drafter.Drafter; what SpeculativeParams(drafter=None) uses
    speculative_stats: Any = None  # SpeculativeStats of the last generate() call (None when it was plain)
    # A reader head (models/reader_head.py Reader) answers /chat prompts with memories by copying a span of them
    # or abstaining; every other prompt is decoded. Set by a backend that loads a checkpoint with a head.
    reader: Any = None

    def verify_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      past: Any = None, position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """Logits (B, T, V) at every new position and the updated cache: drafted tokens verified in one step."""
        raise NotImplementedError(f"{type(self).__name__} has no verify_logits: it cannot decode speculatively")

    def drafter_for(self, spec: Any) -> Any:
        """The drafter `spec` (SpeculativeParams) names, loaded once into this process, on this model's device."""
        return drafter_for(self, spec)

    def load_drafter(self, source: str) -> Any:
        """The drafter at `source` (a folder or HF id) as a Drafter, on this model's device and dtype."""
        raise NotImplementedError(f"{type(self).__name__} cannot load a drafter: attach one as `drafter`")

    # -- tokens -------------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]] if texts else []

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return self.tokenizer.batch_decode([list(i) for i in ids], skip_special_tokens=True)

    @cached_property
    def _vocab_texts(self) -> list[str]:
        return self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])

    # -- scoring ------------------------------------------------------------------------------------------
    def _batches(self, seqs: list[list[int]]) -> Iterator[list[int]]:
        """Indices in length order, batch by batch: similar lengths waste little padding."""
        order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i))
        for start in range(0, len(order), self.batch_size):
            yield order[start:start + self.batch_size]

    @torch.inference_mode()
    def _forward_logprobs(self, seqs: list[list[int]]) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """For each sequence: (index, log-softmax over the vocabulary at positions 0..n-2, targets 1..n-1)."""
        for batch in self._batches(seqs):
            width = max(len(seqs[i]) for i in batch)
            ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, i in enumerate(batch):
                ids[row, : len(seqs[i])] = torch.tensor(seqs[i])
                mask[row, : len(seqs[i])] = 1
            logp = torch.log_softmax(self.sequence_logits(ids, mask).float(), dim=-1)
            for row, i in enumerate(batch):
                n = len(seqs[i])
                yield i, logp[row, : n - 1], ids[row, 1:n].to(logp.device)

    def _with_start(self, texts: Sequence[str]) -> list[list[int]]:
        return self._check_length([[self.start_id] + ids for ids in self.encode(texts)])

    def _check_length(self, seqs: list[list[int]], room: int = 0) -> list[list[int]]:
        """Refuse sequences (plus `room` tokens still to generate) longer than the model's context: models
        with learned positions would fail deep inside, rotary ones would silently extrapolate."""
        too_long = [i for i, s in enumerate(seqs) if len(s) + room > self.max_length]
        if too_long:
            extra = f" plus {room} new tokens" if room else ""
            raise ValueError(f"text {too_long[0]} has {len(seqs[too_long[0]])} tokens{extra}, over the model's "
                             f"{self.max_length}-token context")
        return seqs

    def token_logprobs(self, texts: Sequence[str]) -> list[np.ndarray]:
        out: list[np.ndarray] = [np.zeros(0)] * len(texts)
        for i, logp, targets in self._forward_logprobs(self._with_start(texts)):
            out[i] = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1).double().cpu().numpy()
        return out

    def token_logprob_moments(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        out: list[Any] = [None] * len(texts)
        for i, logp, targets in self._forward_logprobs(self._with_start(texts)):
            p = logp.exp()
            mu = (p * logp).sum(-1)
            var = (p * logp.square()).sum(-1) - mu.square()
            chosen = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            out[i] = tuple(t.double().cpu().numpy() for t in (chosen, mu, var.clamp(min=0)))
        return out

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        # Context and continuation are tokenized apart, so every candidate continuation of one context is
        # scored over exactly its own tokens (what exposure ranking needs).
        contexts = [[self.start_id] + ids for ids in self.encode([c for c, _ in pairs])]
        continuations = self.encode([x for _, x in pairs])
        # The whole sequence must fit, not only the context: past the context window scores are garbage.
        seqs = self._check_length([c + x for c, x in zip(contexts, continuations)])
        out = [0.0] * len(pairs)
        for i, logp, targets in self._forward_logprobs(seqs):
            token_lp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            out[i] = float(token_lp[len(contexts[i]) - 1:].double().sum())
        return out

    # -- generation ---------------------------------------------------------------------------------------
    def _step(self, ids, mask, positions, past):
        return self.next_token_logits(ids, mask, past, positions)

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        return [c.text for c in self.complete(prompts, params)]

    def complete(self, prompts: Sequence[str], params: GenerationParams,
                 logprobs: Optional[int] = None) -> list[Completion]:
        """`generate`, with why each generation ended and, when `logprobs` is given, each of its tokens'
        log-probability and the `logprobs` most likely alternatives (one forward over prompt and answer).

        With a reader head, a prompt it reads is answered with the span it copies (or the abstention), cut to
        max_new_tokens; its logprobs are then the language model's own for those tokens."""
        stops = stop_token_ids(self._vocab_texts, params.stop) if params.stop else []
        seqs = self._check_length(self._with_start(prompts), room=params.max_new_tokens)
        read = self.reader.read(prompts) if self.reader is not None else [None] * len(prompts)
        new: list[list[int]] = [list(ids or [])[:params.max_new_tokens] for ids in read]
        self.speculative_stats = None
        # One random state for the whole call: seeded afresh per batch, row r of every batch would draw the
        # same numbers (one prompt asked twice in two batches would get the same sample).
        generator = sampling_generator(params, self.device)
        decoded = [i for i, ids in enumerate(read) if ids is None]
        for batch in self._batches([seqs[i] for i in decoded]):
            rows = [decoded[b] for b in batch]
            for i, ids in zip(rows, self._decode([seqs[i] for i in rows], params, stops, generator)):
                new[i] = ids
        ends = {self.tokenizer.eos_token_id, *stops}
        texts = self.decode(new)
        kept = [_tokens_of_text(ids, self._vocab_texts, len(_cut_at_stop(text, params.stop)))
                for ids, text in zip(new, texts)]
        scored = self._generated_logprobs(seqs, kept, logprobs) if logprobs is not None else None

        def finish(i: int, ids: list[int], text: str) -> str:
            if read[i] is not None:
                return "length" if len(read[i]) > params.max_new_tokens else "stop"
            return "stop" if (ids and ids[-1] in ends) or _cut_at_stop(text, params.stop) != text else "length"

        return [Completion(text=_cut_at_stop(text, params.stop), finish_reason=finish(i, ids, text),
                           tokens=None if scored is None else scored[i])
                for i, (ids, text) in enumerate(zip(new, texts))]

    def _generated_logprobs(self, seqs: list[list[int]], generated: list[list[int]],
                            top: int) -> list[tuple[TokenLogprob, ...]]:
        """Each generated token's log-probability given the prompt and the tokens before it, and its `top`
        alternatives: the logits the decoding chose from, recomputed in one batched forward."""
        out: list[tuple[TokenLogprob, ...]] = [() for _ in seqs]
        full = [seq + ids for seq, ids in zip(seqs, generated)]
        rows = [i for i, ids in enumerate(generated) if ids]
        for j, logp, targets in self._forward_logprobs([full[i] for i in rows]):
            i = rows[j]
            at = slice(len(seqs[i]) - 1, len(full[i]) - 1)  # the positions that predict the generated tokens
            chosen = logp[at].gather(-1, targets[at].unsqueeze(-1)).squeeze(-1).tolist()
            alternatives = logp[at].topk(top, dim=-1) if top else None
            out[i] = tuple(
                TokenLogprob(self._vocab_texts[t], lp, () if alternatives is None else tuple(
                    (self._vocab_texts[a], v) for a, v in zip(alternatives.indices[k].tolist(),
                                                             alternatives.values[k].tolist())))
                for k, (t, lp) in enumerate(zip(generated[i], chosen)))
        return out

    def label_logprobs(self, prompts: Sequence[str], labels: Sequence[str]) -> list[list[float]]:
        """The log-probability of each label as the next token of each prompt (one forward per batch)."""
        seqs = self._check_length(self._with_start(prompts))
        ids = [self.label_ids(prompt, labels) for prompt in prompts]
        out: list[list[float]] = [[] for _ in prompts]
        with torch.inference_mode():
            for batch in self._batches(seqs):
                rows, mask, positions = left_padded([seqs[i] for i in batch], self.pad_id, self.device)
                logits, _ = self.next_token_logits(rows, mask, None, positions)
                logp = torch.log_softmax(logits.float(), dim=-1)
                for row, i in enumerate(batch):
                    out[i] = logp[row, ids[i]].tolist()
        return out

    def _decode(self, rows: list[list[int]], params: GenerationParams, stops: list[int],
                generator: Optional[torch.Generator] = None) -> list[list[int]]:
        if params.speculative is not None:
            from memorylab.decoding.speculative import generate_speculative

            return generate_speculative(self, rows, params, stops, generator)
        return decode(self._step, rows, params, pad_id=self.pad_id, eos_id=self.tokenizer.eos_token_id,
                      stop_ids=stops, device=self.device, generator=generator)


def _tokens_of_text(ids: Sequence[int], vocab_texts: Sequence[str], length: int) -> list[int]:
    """The leading ids whose texts start within the first `length` characters of their decoded text: the
    tokens of a generation cut at a stop string (the end-of-text token has no text and is never among them)."""
    kept, at = [], 0
    for token in ids:
        if at >= length:
            break
        kept.append(token)
        at += len(vocab_texts[token])
    return kept


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((text.find(s) for s in stop if s in text), default=-1)
    return text if cut < 0 else text[:cut]
