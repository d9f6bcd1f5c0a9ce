"""The unlearning loop shared by every loss method: AdamW at a constant learning rate after a linear warm-up,
gradient clipping, seeded; and the job around it (load the model, unlearn, save).

Forget and retain batches come from two separate seeded streams of packed rows, so the forget batches at
step s are the same whether or not the method looks at the retain set: methods then differ only in their
loss, which is what a comparison between them should measure. A "sequence" for NPO/SimNPO is one packed
row; with seq_len at least a document's length a row holds whole documents.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from memorylab.models.trainer import collate, make_optimizer, packed_rows, tokenize_documents
from memorylab.progress import progress_bar
from memorylab.unlearn.method import LossMethod, UnlearnBatch, UnlearnedModel, UnlearnJob

RETAIN_STREAM = 1  # the retain stream's seed is the job's seed + this, so the two streams never coincide


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


def unlearn(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, forget_docs: Sequence[str],
            retain_docs: Sequence[str], method: LossMethod, seed: int = 0, show_progress: bool = True,
            on_step: Optional[Callable[[int], None]] = None) -> UnlearnResult:
    """Run `method` for its `steps` on `model`, in place; the model is left in eval mode. `on_step(n)` is
    called after the n-th step (1-based), e.g. to measure the model on the way; it must leave the model (and
    the random state) as it found them."""
    if not forget_docs:
        raise ValueError("unlearning needs at least one forget document; the forget set is empty")
    if method.uses_retain and not retain_docs:
        raise ValueError(f"unlearning method '{method.method}' uses a retain set, but no retain documents were "
                         f"given (set its retain_weight to 0 where the method allows it)")
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id

    def batches(docs: Sequence[str], stream_seed: int):
        rows = packed_rows(tokenize_documents(tokenizer, docs, method.seq_len), method.seq_len, stream_seed)
        while True:
            yield {k: v.to(device) for k, v in collate([next(rows) for _ in range(method.batch_size)], pad).items()}

    forget = batches(forget_docs, seed)
    retain = batches(retain_docs, seed + RETAIN_STREAM) if method.uses_retain else None
    reference = None
    if method.wants_reference():
        # The frozen model before unlearning; eval mode so its log-probs never see dropout.
        reference = copy.deepcopy(model).eval().requires_grad_(False)

    trainable_before = {name: p.requires_grad for name, p in model.named_parameters()}  # restored at the end
    updated = method.trainable(model)
    if updated is not None:  # the others keep their values: no gradient, and outside the optimizer
        model.requires_grad_(False)
        parameters = dict(model.named_parameters())
        for name in updated:
            parameters[name].requires_grad_(True)
    torch.manual_seed(seed)  # dropout, if a model has any; as the trainer does
    # No weight decay: an unlearning run changes the weights only through its loss.
    optimizer = make_optimizer(model, method.lr, weight_decay=0.0)
    scheduler = warmup_scheduler(optimizer, method.warmup_steps)
    max_norm = method.grad_clip if method.grad_clip is not None else math.inf  # inf: the norm, unclipped

    result = UnlearnResult()
    cache: dict = {}
    began = time.perf_counter()
    model.train()
    try:
        with progress_bar(total=method.steps, desc=f"unlearn {method.name}", enabled=show_progress) as bar:
            for step in range(1, method.steps + 1):
                batch = UnlearnBatch(next(forget), next(retain) if retain is not None else None, reference,
                                     cache=cache)
                lr = scheduler.get_last_lr()[0]
                loss, stats = method.step_loss(model, batch)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
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
        for name, p in model.named_parameters():
            p.requires_grad_(trainable_before[name])
        del reference
    result.seconds = time.perf_counter() - began
    return result


def unlearn_saved(method: LossMethod, job: UnlearnJob) -> UnlearnedModel:
    """A loss method's job: load the target (or the previous request's model), unlearn it, save it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    began = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(job.tokenizer_dir)
    model = AutoModelForCausalLM.from_pretrained(job.start.path if job.start else job.target).to(job.device)
    on_step = None
    if job.probe is not None:
        from memorylab.models.backends.hf import HFLM

        on_step = job.probe.hook(lambda batch_size: HFLM(model, tokenizer, device=job.device, batch_size=batch_size),
                                 model, job.device)
    result = unlearn(model, tokenizer, job.forget_docs, job.retain_docs, method, seed=job.seed,
                     show_progress=job.show_progress, on_step=on_step)
    final = Path(job.out_dir) / "final"
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    return UnlearnedModel(path=str(final), seconds=time.perf_counter() - began, final_loss=result.losses[-1])
