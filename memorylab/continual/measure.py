"""One measurement point of a continual arm: forgetting and adaptation, and the probes' retention.

Taken in the arm's own process on the model being trained (HFLM over the same weights), so a run needs no
actor per measurement: loss (mean token NLL) and KnowMem on old facts (forgetting) and on new facts
(adaptation), and for every probe group its recognition AUC and recall.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from memorylab.continual.data import ContinualData
from memorylab.evaluation import knowmem_questions
from memorylab.metrics import loss_score, mia_auc
from memorylab.models.backends.hf import HFLM
from memorylab.models.protocol import LM
from memorylab.models.trainer import IGNORE, collate, tokenize_documents
from memorylab.schema.common import EvalConfig


@torch.inference_mode()
def mean_loss(lm: HFLM, texts: Sequence[str], seq_len: int) -> float:
    """Token-weighted mean NLL of the texts, cut into rows as the trainer cuts them: the training loss, on
    fixed documents (a biography can be longer than the model's context; a row never is)."""
    rows = tokenize_documents(lm.tokenizer, texts, seq_len)
    total, count = 0.0, 0
    for start in range(0, len(rows), lm.batch_size):
        batch = collate(rows[start:start + lm.batch_size], lm.pad_id)
        logits = lm.model(input_ids=batch["input_ids"].to(lm.device),
                          attention_mask=batch["attention_mask"].to(lm.device)).logits[:, :-1]
        labels = batch["labels"][:, 1:].to(lm.device)
        total += float(torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(),
                                                         ignore_index=IGNORE, reduction="sum"))
        count += int((labels != IGNORE).sum())
    return total / count


def probe_scores(lm: LM, data: ContinualData) -> dict[str, list[float]]:
    """Mean token log-prob of every probe text, per group and for the control group (one scoring call)."""
    plan = data.probes
    assert plan is not None
    texts = {g.name: g.docs for g in plan.groups} | {"control": plan.control_docs}
    scores = [loss_score(lp) for lp in lm.token_logprobs([t for docs in texts.values() for t in docs])]
    out, at = {}, 0
    for name, docs in texts.items():
        out[name], at = scores[at:at + len(docs)], at + len(docs)
    return out


def measure(lm: HFLM, data: ContinualData, cfg: EvalConfig, seq_len: int,
            baseline: Optional[dict[str, list[float]]] = None) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """The figures of one point, and the probe scores (the step-0 ones calibrate every later point)."""
    point: dict[str, Any] = {
        "old_knowmem": knowmem_questions(lm, data.old_qa, data.fewshot_pool, cfg)[0],
        "new_knowmem": knowmem_questions(lm, data.new_qa, data.fewshot_pool, cfg)[0],
        "old_loss": mean_loss(lm, data.old_eval_docs, seq_len),
        "new_loss": mean_loss(lm, data.new_eval_docs, seq_len),
    }
    if data.probes is None:
        return point, {}
    scores = probe_scores(lm, data)
    baseline = baseline or scores
    shift = {k: np.subtract(scores[k], baseline[k]) for k in scores}  # each text against itself at step 0
    point["probes"] = {
        g.name: {"recognition": mia_auc(shift[g.name], shift["control"]),
                 "recall": knowmem_questions(lm, g.qa, data.fewshot_pool, cfg)[0]}
        for g in data.probes.groups}
    return point, scores
