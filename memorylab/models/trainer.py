"""The trainer loop: packed documents (or one example a row: memorylab.models.documents), AdamW, linear
warm-up then cosine decay, gradient clipping, seeded, resumable from the last checkpoint in its folder.

The batch at step s is a pure function of (documents, seed, s), so a run resumed from a checkpoint sees
exactly the batches an uninterrupted run would have seen, and gives the same weights.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from memorylab.models.documents import (Document, Example, ExampleTokens, MarkedText, MarkedTokens, context_length,
                                        document_text)
from memorylab.progress import progress_bar
from memorylab.schema.common import TrainConfig

IGNORE = -100
hf_logging.disable_progress_bar()  # per-shard save bars would interleave with the training bar
KEEP_CHECKPOINTS = 2


@dataclass
class TrainResult:
    final_dir: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: Optional[int] = None


def tokenize_documents(tokenizer: PreTrainedTokenizerBase, documents: Sequence[Document],
                       seq_len: int) -> list[list[int]]:
    """[BOS] + tokens + [EOS] per document. A text longer than a row is cut into row-sized pieces; an Example
    (memorylab.models.documents) stays one piece, its prompt marked as context, cut to the row's length as
    TOFU truncates to its max_length (its prompt must leave room for some of the answer)."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    texts = [document_text(d) for d in documents]
    # A prompt's own token count, as TOFU counts its question tokens: the prompt tokenized alone.
    prompts = [d.prompt for d in documents if isinstance(d, Example)]
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"] if prompts else []
    prompt_lengths = iter(map(len, prompt_ids))
    pieces: list[list[int]] = []
    for document, ids in zip(documents, tokenizer(texts, add_special_tokens=False)["input_ids"]):
        doc = bos + list(ids) + eos
        if isinstance(document, MarkedText):
            flags = [False] * len(bos) + sensitive_tokens(tokenizer, document, ids) + [False] * len(eos)
            pieces.extend(MarkedTokens(doc[i:i + seq_len], flags[i:i + seq_len]) for i in range(0, len(doc), seq_len))
        elif isinstance(document, Example):
            context = len(bos) + next(prompt_lengths)
            if context >= seq_len:
                raise ValueError(f"an example's prompt is {context} tokens (with BOS), which leaves no room for "
                                 f"its answer in rows of seq_len {seq_len}: {document.prompt[:60]!r}...; "
                                 "raise seq_len")
            pieces.append(ExampleTokens(doc[:seq_len], context))
        else:
            pieces.extend(doc[i:i + seq_len] for i in range(0, len(doc), seq_len))
    return pieces


def sensitive_tokens(tokenizer: PreTrainedTokenizerBase, document: MarkedText, ids: Sequence[int]) -> list[bool]:
    """Per token of `ids` (the text tokenized without special tokens), whether it overlaps a marked span."""
    encoded = tokenizer(document.text, add_special_tokens=False, return_offsets_mapping=True)
    if list(encoded["input_ids"]) != list(ids):
        raise ValueError(f"the tokenizer gives other ids with offsets than without for {document.text[:60]!r}")
    return [any(start < end_span and begin < end for begin, end_span in document.spans)
            for start, end in encoded["offset_mapping"]]


def packed_rows(docs: list[list[int]], seq_len: int, seed: int) -> Iterator[list[int]]:
    """An endless stream of rows: each epoch shuffles the documents (seeded by epoch) and packs whole
    documents greedily into rows of at most seq_len tokens. Packing whole documents keeps every biography
    intact, which verbatim memorization needs; padding the rest of a row costs little at these lengths.
    An example (ExampleTokens) is a row of its own, never packed. Where some documents are MarkedTokens, every
    row is, its tokens' marks carried along (an unmarked document's tokens are not sensitive)."""
    marked = any(isinstance(d, MarkedTokens) for d in docs)

    def finished(row: list[int], flags: list[bool]) -> list[int]:
        return MarkedTokens(row, flags) if marked else row

    epoch = 0
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(len(docs))
        row: list[int] = []
        flags: list[bool] = []
        for i in order:
            if isinstance(docs[i], ExampleTokens):
                yield docs[i]
                continue
            if row and len(row) + len(docs[i]) > seq_len:
                yield finished(row, flags)
                row, flags = [], []
            row.extend(docs[i])
            flags.extend(getattr(docs[i], "sensitive", None) or [False] * len(docs[i]))
        if row:
            yield finished(row, flags)
        epoch += 1


def collate(rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Rows padded to the longest; labels IGNORE on padding and on an example's prompt (its context). Rows with
    marks (MarkedTokens) add "sensitive", a bool per token (False on padding)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        context = context_length(r)
        labels[i, context: len(r)] = torch.tensor(r[context:])
        mask[i, : len(r)] = 1
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if any(isinstance(r, MarkedTokens) for r in rows):
        batch["sensitive"] = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, r in enumerate(rows):
            batch["sensitive"][i, : len(r)] = torch.tensor(getattr(r, "sensitive", [False] * len(r)), dtype=torch.bool)
    return batch


def lr_lambda(cfg: TrainConfig):
    """Linear warm-up to the peak, then cosine decay that reaches min_lr_ratio x peak at step `steps`, one past
    the last step taken (which trains a little above it: 0.134x instead of 0.1x at 10 steps). Kept so: every
    trained target, and the unlearning scenario's tuning (ULD's PrivLeak against gradient ascent's), rest on it."""
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        span = max(1, cfg.steps - cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / span)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; no weight decay on norms and biases (1-D), as in GPT-2/Llama
    training recipes."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)


def _latest_checkpoint(folder: Path) -> Optional[Path]:
    found = sorted(folder.glob("step-*"), key=lambda p: int(p.name.split("-")[1])) if folder.exists() else []
    complete = [p for p in found if (p / "trainer_state.pt").exists()]
    return complete[-1] if complete else None


def _save_checkpoint(folder: Path, step: int, model, tokenizer, optimizer, scheduler, losses) -> None:
    target = folder / f"step-{step}"
    tmp = folder / f".step-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "losses": losses}, tmp / "trainer_state.pt")
    # Rename last, so a crash mid-save never leaves a half-written checkpoint that resume would trust.
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    for old in sorted(folder.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)


def row_mean_loss(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The mean over rows of each row's mean token loss: an example whose answer is a few tokens weighs as much
    as a packed row of a few hundred (the batch-wide token mean would let the packed rows drown it)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    losses = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=IGNORE,
                                               reduction="none")
    counts = (labels != IGNORE).sum(-1)
    return (losses.sum(-1) / counts.clamp(min=1))[counts > 0].mean()


def train_causal_lm(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, documents: Sequence[Document],
                    cfg: TrainConfig, out_dir: Path, seed: int, *, desc: str = "train",
                    show_progress: bool = True, loss_per_row: bool = False) -> TrainResult:
    """Train `model` on `documents` for cfg.steps steps; checkpoints go to out_dir/checkpoints and the
    final model (with its tokenizer and train_log.json) to out_dir/final. Resumes from the newest
    complete checkpoint in out_dir when there is one. `loss_per_row`: every row weighs the same
    (`row_mean_loss`), instead of every token."""
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    if not documents:
        raise ValueError("no training documents")
    torch.manual_seed(seed)
    model.train()
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    start, losses, resumed = 0, [], None
    latest = _latest_checkpoint(ckpt_dir)
    if latest is not None:
        state = torch.load(latest / "trainer_state.pt", weights_only=True)  # tensors and numbers: never code
        weights = type(model).from_pretrained(latest).state_dict()
        model.load_state_dict(weights)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, losses, resumed = state["step"], list(state["losses"]), state["step"]

    rows = packed_rows(tokenize_documents(tokenizer, documents, cfg.seq_len), cfg.seq_len, seed)
    for _ in range(start * cfg.batch_size):  # replay the stream up to where the checkpoint stopped
        next(rows)
    device = next(model.parameters()).device
    began = time.perf_counter()
    with progress_bar(total=cfg.steps, initial=start, desc=desc, enabled=show_progress) as bar:
        for step in range(start, cfg.steps):
            batch = {k: v.to(device) for k, v in collate([next(rows) for _ in range(cfg.batch_size)],
                                                         tokenizer.pad_token_id).items()}
            loss = row_mean_loss(model, batch) if loss_per_row else model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            bar.update(1, loss=losses[-1])
            done = step + 1
            if done % cfg.checkpoint_every == 0 and done < cfg.steps:
                _save_checkpoint(ckpt_dir, done, model, tokenizer, optimizer, scheduler, losses)

    final = out_dir / "final"
    model.eval()
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    seconds = time.perf_counter() - began
    (final / "train_log.json").write_text(json.dumps(
        {"steps": cfg.steps, "seed": seed, "losses": losses, "seconds": seconds, "resumed_from": resumed}))
    return TrainResult(final_dir=final, steps=cfg.steps, losses=losses, seconds=seconds, resumed_from=resumed)
