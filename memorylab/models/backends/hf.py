"""The `hf` backend: the LM protocol over a transformers causal LM, on CPU or CUDA."""

from __future__ import annotations

import inspect
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from memorylab.decoding.drafter import Drafter
from memorylab.decoding.vocabtrim import load_counts
from memorylab.models.logits_lm import LogitsLM
from memorylab.models.reader_head import Reader, ReaderHead, has_reader_head

# Our own progress bars cover loading and saving; transformers' per-shard bars only add noise.
hf_logging.disable_progress_bar()

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class HFLM(LogitsLM):
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
    def load(cls, source: str, *, dtype: str = "float32", device: str = "auto", batch_size: int = 32,
             speculative: Any = None) -> "HFLM":
        """Load from a hub id or a local folder written by save_pretrained. `speculative` (SpeculativeParams
        naming a drafter) loads that drafter now, beside the model, instead of at the first generation."""
        dev = resolve_device(device)
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=DTYPES[dtype])
        lm = cls(model, tokenizer, batch_size=batch_size, device=dev)
        if has_reader_head(source):
            lm.reader = Reader(ReaderHead.load(Path(source), lm.device), lm.model, tokenizer, lm.start_id, lm.pad_id,
                               lm.device)
        if speculative is not None:
            lm.drafter_for(speculative)
        return lm

    def load_drafter(self, source: str) -> Drafter:
        dtype = next(self.model.parameters()).dtype
        return load_drafter(source, device=self.device, dtype=DTYPE_NAMES.get(dtype, "float32"))

    # -- the two primitives -------------------------------------------------------------------------------
    def sequence_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device)).logits

    @torch.no_grad()
    def next_token_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                          past: Any = None, position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        logits, past = self._cached_forward(input_ids, attention_mask, past, position_ids)
        return logits[:, -1, :].float(), past

    @torch.no_grad()
    def verify_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      past: Any = None, position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """`next_token_logits` at every new position (B, T, V): speculative decoding's verification step."""
        logits, past = self._cached_forward(input_ids, attention_mask, past, position_ids)
        return logits.float(), past

    def _cached_forward(self, input_ids, attention_mask, past, position_ids) -> tuple[torch.Tensor, Any]:
        # transformers 5 renamed past_key_values to cache; speak whichever this model's forward knows.
        cache_kw = "cache" if self._forward_takes_cache else "past_key_values"
        out = self.model(input_ids=input_ids.to(self.device),
                         attention_mask=None if attention_mask is None else attention_mask.to(self.device),
                         position_ids=None if position_ids is None else position_ids.to(self.device),
                         use_cache=True, **{cache_kw: past})
        return out.logits, getattr(out, cache_kw)

    @cached_property
    def _forward_takes_cache(self) -> bool:
        # A peft wrapper hides the base model's signature behind **kwargs; ask the model underneath.
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return "cache" in inspect.signature(base.forward).parameters


def load_drafter(source: str, *, vocab: Optional[int] = None, device: str | torch.device = "cpu",
                 dtype: str = "float32") -> Drafter:
    """A speculative-decoding drafter from a folder or HF id, with its token counts (token_counts.json beside
    it, for VocabTrim) when it has them; `vocab` trims its head to that many of its most frequent tokens."""
    lm = HFLM.load(source, dtype=dtype, device=str(device))
    counts = load_counts(source) if Path(source, "token_counts.json").exists() else None
    drafter = Drafter(lm, counts=counts)
    return drafter if vocab is None else drafter.trimmed(vocab)
