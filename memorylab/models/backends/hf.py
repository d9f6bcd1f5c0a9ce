"""The `hf` backend: the LM protocol over a transformers causal LM, on CPU or CUDA."""

from __future__ import annotations

import inspect
from functools import cached_property
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from transformers.utils import logging as hf_logging
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from memorylab.decoding import decode, stop_token_ids
from memorylab.models.protocol import GenerationParams

# Our own progress bars cover loading and saving; transformers' per-shard bars only add noise.
hf_logging.disable_progress_bar()

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class HFLM:
    """A transformers model and its tokenizer behind the batched LM protocol."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, batch_size: int = 32,
                 device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        # Scoring conditions every text on a start token, so its first token gets a probability too.
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if start is None:
            raise ValueError("the tokenizer has neither a BOS nor an EOS token to start texts with")
        self.start_id = start
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else start
        self.max_length = int(getattr(model.config, "max_position_embeddings", 2048))

    @classmethod
    def load(cls, source: str, *, dtype: str = "float32", device: str = "auto", batch_size: int = 32) -> "HFLM":
        """Load from a hub id or a local folder written by save_pretrained."""
        dev = resolve_device(device)
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=DTYPES[dtype])
        return cls(model, tokenizer, batch_size=batch_size, device=dev)

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
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            logp = torch.log_softmax(logits.float(), dim=-1)
            for row, i in enumerate(batch):
                n = len(seqs[i])
                yield i, logp[row, : n - 1], ids[row, 1:n].to(self.device)

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
    @torch.no_grad()
    def next_token_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                          past: Any = None, position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        # transformers 5 renamed past_key_values to cache; speak whichever this model's forward knows.
        cache_kw = "cache" if self._forward_takes_cache else "past_key_values"
        out = self.model(input_ids=input_ids.to(self.device),
                         attention_mask=None if attention_mask is None else attention_mask.to(self.device),
                         position_ids=None if position_ids is None else position_ids.to(self.device),
                         use_cache=True, **{cache_kw: past})
        return out.logits[:, -1, :].float(), getattr(out, cache_kw)

    @cached_property
    def _forward_takes_cache(self) -> bool:
        return "cache" in inspect.signature(self.model.forward).parameters

    def _step(self, ids, mask, positions, past):
        return self.next_token_logits(ids, mask, past, positions)

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        stops = stop_token_ids(self._vocab_texts, params.stop) if params.stop else []
        seqs = self._check_length(self._with_start(prompts), room=params.max_new_tokens)
        outputs: list[str] = [""] * len(prompts)
        for batch in self._batches(seqs):
            new = decode(self._step, [seqs[i] for i in batch], params, pad_id=self.pad_id,
                         eos_id=self.tokenizer.eos_token_id, stop_ids=stops, device=self.device)
            for i, text in zip(batch, self.decode(new)):
                outputs[i] = _cut_at_stop(text, params.stop)
        return outputs


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((text.find(s) for s in stop if s in text), default=-1)
    return text if cut < 0 else text[:cut]
