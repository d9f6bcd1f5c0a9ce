"""A byte-level BPE tokenizer trained on the corpus, wrapped as a transformers tokenizer.

Wrapping it in `PreTrainedTokenizerFast` means a tiny model's folder looks exactly like a hub model's
(`save_pretrained` / `AutoTokenizer.from_pretrained`), so every later stage loads tiny and real models the
same way.
"""

from __future__ import annotations

from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts`. Deterministic for the same texts in the same order."""
    tok = Tokenizer(models.BPE())
    # add_prefix_space=False keeps "word" at the start of a text and " word" mid-sentence distinct, as GPT-2 does.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        # Left padding: batched generation appends new tokens on the right of every row.
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
