"""Span-level unlearning (the "Scrub It Out" / CodeEraser idea): with `scope: spans` a loss method's forget
loss falls on the sensitive tokens alone (the fact values and canary secrets the world marks: documents are
MarkedText, rows carry a "sensitive" mask), and a KL term keeps every other token of the forget documents to
the frozen target's distribution, so that the text around a secret stays as the model knew it.

    loss = method's loss on the forget rows, labels kept only on sensitive tokens
           + span_kl_weight * mean over the other labelled tokens of KL(p_target || p_model)

A mixin of settings: gradient ascent, gradient difference, NPO and SimNPO take it (README, "Span-level
unlearning"); `scope: documents`, the default, is each method as it was.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Optional

from pydantic import Field

from memorylab.schema.common import Strict


class SpanScoped(Strict):
    scope: Literal["documents", "spans"] = Field(
        "documents", description="spans: the forget loss on the marked sensitive tokens only (world data), "
        "with a KL term holding the rest of each forget document to the target's distribution")
    # 5: on the unlearning tests' model, the text around the values moves 0.03 nats per nat the values lose (GA,
    # 0.04 NPO) against 0.72 on whole documents; at 1 it is 0.28 (0.36), the values' loss pulling the rest along.
    span_kl_weight: float = Field(5.0, ge=0, description="with scope spans: the weight of that KL term")

    def wants_reference(self) -> bool:
        return bool(getattr(self, "needs_reference", False)) or self.scope == "spans"

    def scenario_problem(self, scenario: Any) -> Optional[str]:
        if self.scope == "spans" and scenario.data.source != "world":
            return (f"{self.method} scope 'spans' needs data.source 'world', whose documents mark their facts' "
                    "values and canary secrets; TOFU marks nothing")
        return None

    def step_loss(self, model: Any, batch: Any) -> tuple[Any, dict[str, float]]:
        if self.scope == "documents":
            return self.loss(model, batch)
        from memorylab.models.trainer import IGNORE

        whole = batch.forget
        if "sensitive" not in whole:
            raise ValueError(f"{self.method} with scope 'spans' got forget rows without marks (MarkedText)")
        spans = {**whole, "labels": whole["labels"].masked_fill(~whole["sensitive"], IGNORE)}
        loss, stats = self.loss(model, dataclasses.replace(batch, forget=spans, forget_reference_logps=None))
        kl = context_kl(model, batch.reference, whole)
        stats["context_kl"] = float(kl.detach())
        return loss + self.span_kl_weight * kl, stats


def context_kl(model: Any, reference: Any, batch: dict[str, Any]) -> Any:
    """Mean KL(p_reference || p_model) of the next-token distributions that predict a labelled, non-sensitive
    token (0 when a batch has none)."""
    import torch
    import torch.nn.functional as F

    from memorylab.models.trainer import IGNORE

    keep = (batch["labels"][:, 1:] != IGNORE) & ~batch["sensitive"][:, 1:]
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1][keep]
    with torch.no_grad():
        ref = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1][keep]
    if not len(logits):
        return logits.sum() * 0.0
    return F.kl_div(F.log_softmax(logits.float(), -1), F.log_softmax(ref.float(), -1), log_target=True,
                    reduction="batchmean")
