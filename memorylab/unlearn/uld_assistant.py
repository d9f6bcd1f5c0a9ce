"""ULD's assistant (Ji et al. 2024, "Reversing the Forget-Retain Objectives"): a small model built from the
target's first K layers, its embeddings, final norm and head (copied and frozen), with LoRA adapters trained
the *reverse* way round: remember the forget set, be uniform on the retain set. At decoding time
(`memorylab.decoding.uld`) its logits are subtracted from the target's, which removes what the forget set
taught the target and leaves retain-set predictions nearly untouched: there the assistant is near uniform, so
it subtracts about one constant from every token the filter keeps, which leaves their order (they move by alpha
times that constant against the filtered tokens, which the filter leaves as the target has them).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from memorylab.models.trainer import IGNORE, collate, packed_rows, tokenize_documents
from memorylab.progress import progress_bar
from memorylab.unlearn.loop import warmup_scheduler
from memorylab.unlearn.method import AssistantDecoding, UnlearnedModel, UnlearnJob

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def build_assistant(target_model: PreTrainedModel, num_layers: int, lora_rank: int = 8, lora_alpha: int = 16,
                    lora_dropout: float = 0.0, seed: int = 0):
    """A LoRA-wrapped (peft) LlamaForCausalLM with the target's embeddings, first `num_layers` decoder layers,
    final norm and LM head, copied (not shared storage) and frozen; only the LoRA matrices are trainable.
    LoRA's B matrices start at zero, so the fresh assistant computes exactly the truncated target."""
    from peft import LoraConfig, get_peft_model

    if not isinstance(target_model, LlamaForCausalLM):
        raise ValueError(f"build_assistant needs a Llama-architecture model (LlamaForCausalLM), "
                         f"got {type(target_model).__name__}")
    total = int(target_model.config.num_hidden_layers)
    if not isinstance(num_layers, int) or not 1 <= num_layers <= total:
        raise ValueError(f"num_layers must be in 1..{total} (the target's layer count), got {num_layers!r}")
    config = copy.deepcopy(target_model.config)
    config.num_hidden_layers = num_layers
    if getattr(config, "layer_types", None) is not None:  # per-layer attention kinds, where the config has them
        config.layer_types = list(config.layer_types)[:num_layers]
    dtype = next(target_model.parameters()).dtype
    device = next(target_model.parameters()).device
    keep = {f"model.layers.{i}." for i in range(num_layers)}

    def wanted(key: str) -> bool:
        return not key.startswith("model.layers.") or any(key.startswith(p) for p in keep)

    state = {k: v for k, v in target_model.state_dict().items() if wanted(k)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        base = LlamaForCausalLM(config).to(dtype=dtype)
        # load_state_dict copies the values into the assistant's own tensors: no storage is shared.
        missing, unexpected = base.load_state_dict(state, strict=False)
        # A tied head has no key of its own; anything else missing would be a silently random weight.
        missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
        if missing or unexpected:
            raise RuntimeError(f"assistant weights do not match the target: missing {missing}, "
                               f"unexpected {unexpected}")
        base = base.to(device)
        for p in base.parameters():
            p.requires_grad_(False)
        lora = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                          target_modules=list(LORA_TARGETS), bias="none", task_type="CAUSAL_LM")
        with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
            warnings.simplefilter("ignore", FutureWarning)
            assistant = get_peft_model(base, lora)
    return assistant.eval()


def uniform_kl(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the positions where `mask` is true of KL(uniform || softmax(logits)), which is
    -log V - mean_v log p_v: zero exactly when the prediction is uniform."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    kl = -math.log(logits.shape[-1]) - logp.mean(dim=-1)
    mask = mask.to(kl.dtype)
    return (kl * mask).sum() / mask.sum().clamp(min=1.0)


def train_assistant(assistant, tokenizer: PreTrainedTokenizerBase, forget_docs: Sequence[str],
                    retain_docs: Sequence[str], cfg: Any, seed: int = 0, show_progress: bool = True,
                    on_step: Optional[Callable[[int], None]] = None) -> list[float]:
    """Train the assistant's LoRA parameters for cfg.steps (cfg: ULD's settings, memorylab/unlearn/uld.py): loss = CE(forget) +
    cfg.retain_weight * KL(uniform || p) averaged over the retain tokens. The caller chooses the documents
    (paraphrases of the forget set belong in forget_docs; wrong answers to forget questions may go in
    retain_docs). Returns the loss of every step; leaves the assistant in eval mode. Deterministic for the
    same inputs and seed. `on_step(n)` is called after the n-th step (1-based) and must leave the assistant and
    the random state as it found them."""
    if not forget_docs:
        raise ValueError("no forget documents to train the assistant on")
    params = [p for p in assistant.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the assistant has no trainable parameters (expected LoRA adapters)")
    device = next(assistant.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    use_retain = bool(retain_docs) and cfg.retain_weight > 0
    forget_rows = packed_rows(tokenize_documents(tokenizer, forget_docs, cfg.seq_len), cfg.seq_len, seed)
    retain_rows = (packed_rows(tokenize_documents(tokenizer, retain_docs, cfg.seq_len), cfg.seq_len, seed + 1)
                   if use_retain else None)
    losses: list[float] = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        optimizer = torch.optim.AdamW(params, lr=cfg.lr)
        scheduler = warmup_scheduler(optimizer, cfg.warmup_steps)
        assistant.train()
        try:
            with progress_bar(total=cfg.steps, desc="train ULD assistant", enabled=show_progress) as bar:
                for step in range(1, cfg.steps + 1):
                    batch = {k: v.to(device) for k, v in
                             collate([next(forget_rows) for _ in range(cfg.batch_size)], pad).items()}
                    loss = assistant(**batch).loss
                    if use_retain:
                        rb = {k: v.to(device) for k, v in
                              collate([next(retain_rows) for _ in range(cfg.batch_size)], pad).items()}
                        logits = assistant(input_ids=rb["input_ids"], attention_mask=rb["attention_mask"]).logits
                        # Position t predicts token t+1: count it where that token is real, not padding.
                        loss = loss + cfg.retain_weight * uniform_kl(logits[:, :-1], rb["labels"][:, 1:] != IGNORE)
                    loss.backward()
                    if cfg.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    losses.append(float(loss.detach()))
                    bar.update(1, loss=losses[-1])
                    if on_step is not None:
                        on_step(step)
        finally:
            assistant.eval()
    return losses


def merge_assistant(assistant) -> PreTrainedModel:
    """A plain transformers model with the LoRA updates merged in (the given assistant is left as it was), so
    it can be saved with save_pretrained and loaded by HFLM.load."""
    merged = copy.deepcopy(assistant).merge_and_unload()
    for p in merged.parameters():
        p.requires_grad_(False)
    return merged.eval()


def unlearn_with_assistant(uld: Any, job: UnlearnJob) -> UnlearnedModel:
    """ULD's job (`uld`: its settings, memorylab/unlearn/uld.py): train the assistant (a chain's later request
    updates the previous one, already K layers) and save it merged; the target is left as it is."""
    began = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(job.tokenizer_dir)
    base_path = job.start.assistant.path if job.start and job.start.assistant else job.target
    base = AutoModelForCausalLM.from_pretrained(base_path).to(job.device)
    assistant = build_assistant(base, uld.layers, lora_rank=uld.lora_rank, lora_alpha=uld.lora_alpha,
                                seed=job.seed)
    on_step = None
    if job.probe is not None:
        from memorylab.decoding.uld import ULDLM
        from memorylab.models.backends.hf import HFLM

        targets: dict[int, Any] = {}  # loaded at the first probe step, kept for the others

        def measured(batch_size: int) -> Any:
            if batch_size not in targets:
                targets[batch_size] = HFLM.load(job.target, device=job.device, batch_size=batch_size)
            merged = HFLM(merge_assistant(assistant), tokenizer, device=job.device, batch_size=batch_size)
            return ULDLM(targets[batch_size], merged, alpha=uld.alpha, r=uld.r)

        on_step = job.probe.hook(measured, assistant, job.device)
    losses = train_assistant(assistant, tokenizer, job.forget_docs, job.retain_docs, uld, seed=job.seed,
                             show_progress=job.show_progress, on_step=on_step)
    folder = Path(job.out_dir) / "assistant"
    merge_assistant(assistant).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return UnlearnedModel(path=job.target, seconds=time.perf_counter() - began, final_loss=losses[-1],
                          assistant=AssistantDecoding(str(folder), uld.alpha, uld.r, uld.placement))
