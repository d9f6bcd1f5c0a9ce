"""The unlearning loop shared by every method: AdamW at a constant learning rate after a linear warm-up,
gradient clipping, seeded.

Forget and retain batches come from two separate seeded streams of packed rows, so the forget batches at
step s are the same whether or not the method looks at the retain set: methods then differ only in their
loss, which is what a comparison between them should measure. A "sequence" for NPO/SimNPO is one packed
row; with seq_len at least a document's length a row holds whole documents.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from memorylab.models.trainer import collate, make_optimizer, packed_rows, tokenize_documents
from memorylab.progress import progress_bar
from memorylab.scenario import TrainConfig
from memorylab.unlearn.sequence import sequence_logprobs

if TYPE_CHECKING:
    from memorylab.unlearn import UnlearnMethod

RETAIN_STREAM = 1  # the retain stream's seed is cfg.seed + this, so the two streams never coincide


@dataclass(frozen=True)
class UnlearnConfig:
    steps: int = 50
    lr: float = 1e-4  # constant after warm-up: unlearning runs are short and stopped by step count
    batch_size: int = 8  # forget rows per step, and as many retain rows when the method uses them
    seq_len: int = 128
    warmup_steps: int = 0
    grad_clip: float = 1.0
    retain_weight: float = 1.0  # used by methods whose own retain_weight is left unset (None)
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [("steps", self.steps >= 1, ">= 1"), ("lr", self.lr > 0, "> 0"),
                  ("batch_size", self.batch_size >= 1, ">= 1"), ("seq_len", self.seq_len >= 2, ">= 2"),
                  ("warmup_steps", self.warmup_steps >= 0, ">= 0"), ("grad_clip", self.grad_clip > 0, "> 0"),
                  ("retain_weight", self.retain_weight >= 0, ">= 0")]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"unlearn config: {name} must be {rule}, got {getattr(self, name)}")


@dataclass
class UnlearnResult:
    losses: list[float] = field(default_factory=list)
    stats: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def warmup_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning rate rising linearly over the first `warmup_steps` steps (the first at 1/warmup_steps of
    it), then constant; 0: constant from the start."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0)


def _resolve_retain_weight(method: "UnlearnMethod", cfg: UnlearnConfig) -> "UnlearnMethod":
    """A method whose retain_weight is unset takes the config's; one set explicitly keeps its own."""
    if dataclasses.is_dataclass(method) and getattr(method, "retain_weight", 0.0) is None:
        return dataclasses.replace(method, retain_weight=cfg.retain_weight)
    return method


def unlearn(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, forget_docs: Sequence[str],
            retain_docs: Sequence[str], method: "UnlearnMethod", cfg: UnlearnConfig = UnlearnConfig(),
            show_progress: bool = True, on_step: Optional[Callable[[int], None]] = None) -> UnlearnResult:
    """Run `method` for cfg.steps steps on `model`, in place; the model is left in eval mode. `on_step(n)` is
    called after the n-th step (1-based), e.g. to measure the model on the way; it must leave the model (and
    the random state) as it found them."""
    if not forget_docs:
        raise ValueError("unlearning needs at least one forget document; the forget set is empty")
    method = _resolve_retain_weight(method, cfg)
    if method.uses_retain and not retain_docs:
        raise ValueError(f"unlearning method '{method.name}' uses a retain set, but no retain documents were "
                         f"given (set its retain_weight to 0 where the method allows it)")
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id

    def batches(docs: Sequence[str], seed: int):
        rows = packed_rows(tokenize_documents(tokenizer, docs, cfg.seq_len), cfg.seq_len, seed)
        while True:
            yield {k: v.to(device) for k, v in collate([next(rows) for _ in range(cfg.batch_size)], pad).items()}

    forget = batches(forget_docs, cfg.seed)
    retain = batches(retain_docs, cfg.seed + RETAIN_STREAM) if method.uses_retain else None
    reference = None
    if method.needs_reference:
        # The frozen model before unlearning; eval mode so its log-probs never see dropout.
        reference = copy.deepcopy(model).eval().requires_grad_(False)

    torch.manual_seed(cfg.seed)  # dropout, if a model has any; as the trainer does
    # make_optimizer reads only lr and weight_decay; no weight decay, so an unlearning run changes the
    # weights only through its loss.
    optimizer = make_optimizer(model, TrainConfig(lr=cfg.lr, weight_decay=0.0))
    scheduler = warmup_scheduler(optimizer, cfg.warmup_steps)

    result = UnlearnResult()
    began = time.perf_counter()
    model.train()
    try:
        with progress_bar(total=cfg.steps, desc=f"unlearn {method.name}", enabled=show_progress) as bar:
            for step in range(1, cfg.steps + 1):
                forget_batch = next(forget)
                retain_batch = next(retain) if retain is not None else None
                ref_logps = None
                if reference is not None:
                    with torch.no_grad():
                        ref_logps = sequence_logprobs(reference, forget_batch)[0]
                lr = scheduler.get_last_lr()[0]
                loss, stats = method.loss(model, forget_batch, retain_batch, ref_logps)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                result.losses.append(float(loss.detach()))
                result.stats.append({**stats, "lr": lr, "grad_norm": float(grad_norm)})
                bar.update(1, loss=result.losses[-1])
                if on_step is not None:
                    on_step(step)
    finally:
        model.eval()
        del reference
    result.seconds = time.perf_counter() - began
    return result
