"""Per-sequence log-probabilities of a collated batch, the quantity every unlearning loss is built on.

A batch is what `memorylab.models.trainer.collate` returns: input_ids, attention_mask and labels, with
IGNORE (-100) on padding. Token t is predicted from the logits at position t-1, so logits drop their last
position and labels their first; the first token of a row (BOS) is context, never scored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from memorylab.models.trainer import IGNORE


def token_logprobs(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(token | prefix) of each labelled token [B, T-1], 0 elsewhere; the mask of those tokens [B, T-1])."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE
    # log_softmax in float32: half-precision logits lose the small differences NPO's log-ratio depends on.
    logp = F.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask, mask


def sequence_logprobs(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of log p(token | prefix) over each row's labelled tokens [B], number of those tokens [B])."""
    token_logp, mask = token_logprobs(model, batch)
    return token_logp.sum(-1), mask.sum(-1)


def nll(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean token cross-entropy over the batch (every labelled token weighs the same, as in HF's `.loss`)."""
    sum_logp, n = sequence_logprobs(model, batch)
    return -sum_logp.sum() / n.sum().clamp(min=1)
