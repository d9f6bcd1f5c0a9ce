"""One unlearning job as a Ray task: load the starting model, apply one method, save the result.

A job starts from the target (or, in a sustainability chain, from the previous request's result) and returns
where its model lies. For ULD the target is left untouched: the job trains (or, in a chain, updates) the
assistant and returns both paths, since the unlearned model is their logit difference.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

from pydantic import TypeAdapter

from memorylab.runners.unlearning_progress import Probe
from memorylab.schema.unlearning import MethodBase, MethodConfig, ULDConfig

_METHOD = TypeAdapter(MethodConfig)
LOOP_FIELDS = set(MethodBase.model_fields) | {"method"}  # settings of the loop, not of the method's loss


def method_hparams(cfg: Any) -> dict[str, Any]:
    """The hyperparameters a method's loss takes (beta, gamma, retain_weight ...), for make_method."""
    return cfg.model_dump(exclude=LOOP_FIELDS)


def unlearn_job(method_json: str, target_path: str, tokenizer_dir: str, forget_docs: list[str],
                retain_docs: list[str], out_dir: str, seed: int, threads: int, device: str,
                start: Optional[dict[str, Any]] = None, show_progress: bool = True,
                probe: Optional[Probe] = None) -> dict[str, Any]:
    """Runs in a Ray worker (or in-process in tests). `start` is a previous job's result to continue from;
    `probe` measures the model on the way (intermediate results for a sweep scheduler)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    cfg = _METHOD.validate_json(method_json)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    out = Path(out_dir)
    began = time.perf_counter()
    if isinstance(cfg, ULDConfig):
        from memorylab.unlearn.uld import ULDTrainConfig, build_assistant, merge_assistant, train_assistant

        # A chain updates the previous assistant (which already is K layers); a first request cuts the target.
        base_path = start["assistant"] if start else target_path
        base = AutoModelForCausalLM.from_pretrained(base_path).to(device)
        assistant = build_assistant(base, cfg.layers, lora_rank=cfg.lora_rank, lora_alpha=cfg.lora_alpha, seed=seed)
        on_step = None
        if probe is not None:
            from memorylab.decoding.uld import ULDLM
            from memorylab.models.backends.hf import HFLM

            target = HFLM.load(target_path, device=device, batch_size=probe.eval.batch_size)
            on_step = probe.hook(lambda: ULDLM(target, HFLM(merge_assistant(assistant), tokenizer, device=device,
                                                            batch_size=probe.eval.batch_size),
                                               alpha=cfg.alpha, r=cfg.r), assistant, device)
        losses = train_assistant(assistant, tokenizer, forget_docs, retain_docs,
                                 ULDTrainConfig(steps=cfg.steps, lr=cfg.lr, batch_size=cfg.batch_size,
                                                seq_len=cfg.seq_len, retain_weight=cfg.retain_weight, seed=seed,
                                                warmup_steps=cfg.warmup_steps, grad_clip=cfg.grad_clip),
                                 show_progress=show_progress, on_step=on_step)
        merge_assistant(assistant).save_pretrained(out / "assistant")
        tokenizer.save_pretrained(out / "assistant")
        return {"path": target_path, "assistant": str(out / "assistant"), "alpha": cfg.alpha, "r": cfg.r,
                "placement": cfg.placement,
                "seconds": time.perf_counter() - began, "final_loss": losses[-1]}

    from memorylab.unlearn import UnlearnConfig, make_method, unlearn

    model = AutoModelForCausalLM.from_pretrained(start["path"] if start else target_path).to(device)
    hparams = method_hparams(cfg)
    loop = UnlearnConfig(steps=cfg.steps, lr=cfg.lr, batch_size=cfg.batch_size, seq_len=cfg.seq_len,
                         warmup_steps=cfg.warmup_steps, grad_clip=cfg.grad_clip,
                         retain_weight=hparams.get("retain_weight", 1.0), seed=seed)
    on_step = None
    if probe is not None:
        from memorylab.models.backends.hf import HFLM

        on_step = probe.hook(lambda: HFLM(model, tokenizer, device=device, batch_size=probe.eval.batch_size),
                             model, device)
    result = unlearn(model, tokenizer, forget_docs, retain_docs, make_method(cfg.method, **hparams), loop,
                     show_progress=show_progress, on_step=on_step)
    model.save_pretrained(out / "final")
    tokenizer.save_pretrained(out / "final")
    return {"path": str(out / "final"), "assistant": None, "seconds": time.perf_counter() - began,
            "final_loss": result.losses[-1]}
