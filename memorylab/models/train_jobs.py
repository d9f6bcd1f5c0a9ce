"""Training as Ray tasks: the tokenizer a run's models share, and one task per model, all at once.

Every runner that trains (a target and a retrain reference, a continual base model, a served generator, a
speculative-decoding drafter) goes through `train_models`, so a finished model is reused on restart and a model
folder trained with other settings is refused the same way everywhere (models/training_record.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

import ray

from memorylab.cluster.resources import actor_options, device_for, torch_threads
from memorylab.models.training_record import check_training_record, training_record
from memorylab.schema.common import ActorResources, ModelSpec, TrainConfig


def prepare_tokenizer(spec: ModelSpec, texts: Sequence[str], folder: Path) -> Path:
    """The tokenizer every model of the run shares, saved to `folder`: a BPE trained on `texts` for a tiny
    model, the model's own tokenizer otherwise."""
    folder.mkdir(parents=True, exist_ok=True)
    if spec.is_tiny:
        from memorylab.models.tokenizer import train_bpe_tokenizer

        tokenizer = train_bpe_tokenizer(texts, spec.tiny.vocab_size)
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(spec.name)
        if tokenizer.pad_token is None:  # many hub LMs ship without one; batching needs it
            tokenizer.pad_token = tokenizer.eos_token
    tokenizer.save_pretrained(folder)
    return folder


def drafter_spec(spec: ModelSpec) -> ModelSpec:
    """The speculative-decoding drafter of a tiny model: its vocabulary, context and width, one layer (a drafter
    steps gamma times a round, so it must cost a fraction of its target's several layers)."""
    from memorylab.models.drafter_training import drafter_config

    return spec.model_copy(update={"tiny": drafter_config(spec.tiny, num_layers=1)})


def _train_task(spec_json: str, tokenizer_dir: str, documents: list[Any], train_json: str, out_dir: str,
                seed: int, threads: int, device: str, desc: str, count_tokens: bool = False,
                start_from: Optional[str] = None) -> dict[str, Any]:
    """Runs in a Ray worker: build or load the base model (or the trained model at `start_from`), train it,
    return where it was saved; with `count_tokens`, save the corpus's token counts beside it (what VocabTrim
    trims a drafter's head by)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memorylab.models.backends.hf import DTYPES
    from memorylab.models.tiny import build_tiny_model
    from memorylab.models.trainer import train_causal_lm

    torch.set_num_threads(threads)
    spec = ModelSpec.model_validate_json(spec_json)
    train = TrainConfig.model_validate_json(train_json)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if start_from is not None:
        model = AutoModelForCausalLM.from_pretrained(start_from, dtype=DTYPES[spec.dtype])
    elif spec.is_tiny:
        model = build_tiny_model(spec.tiny, tokenizer, seed)
    else:
        model = AutoModelForCausalLM.from_pretrained(spec.name, dtype=DTYPES[spec.dtype])
    model.to(device)
    result = train_causal_lm(model, tokenizer, documents, train, Path(out_dir), seed, desc=desc,
                             loss_per_row=train.loss == "row")
    if count_tokens:
        from memorylab.decoding.vocabtrim import corpus_counts, save_counts
        from memorylab.models.documents import document_text

        save_counts(result.final_dir, corpus_counts(tokenizer, [document_text(d) for d in documents]), "corpus")
    return {"path": str(result.final_dir), "seconds": result.seconds, "steps": result.steps,
            "final_loss": result.losses[-1],
            "resumed_from": result.resumed_from, "losses": result.losses}


def train_models(corpora: dict[str, list[Any]], spec: ModelSpec, train: TrainConfig, resources: ActorResources,
                 tokenizer_dir: Path, out_dir: Path, seed: int, *,
                 drafters: Sequence[str] = (), start_from: Optional[Path] = None) -> dict[str, dict[str, Any]]:
    """Train one model per corpus, all at once as Ray tasks (each with the trainer's resources).

    A model whose folder already holds a finished training (final/train_log.json) is reused, not retrained:
    that is what lets an interrupted run resume; a folder whose model was trained with another spec, other
    settings, seed or documents is refused (models/training_record.py). Every model starts from the same seed,
    so the only difference between a target and its retrain reference is the data. The corpora named in `drafters` train
    speculative-decoding drafters of the tiny `spec` (drafter_spec), saved with their token counts. `start_from`:
    a trained model's final/ folder every model continues from (a second training stage) instead of `spec`'s
    initial weights; its record becomes part of theirs."""
    task = ray.remote(_train_task).options(**actor_options(resources), max_retries=0)
    pending, results = {}, {}
    for name, documents in corpora.items():
        folder = out_dir / "models" / name
        model = drafter_spec(spec) if name in drafters else spec
        check_training_record(folder, training_record(model, train, seed, documents, start_from))
        log = folder / "final" / "train_log.json"
        saved = json.loads(log.read_text()) if log.exists() else {}
        if saved.get("steps") == train.steps:
            results[name] = {"path": str(log.parent), "seconds": saved["seconds"], "steps": saved["steps"],
                             "final_loss": saved["losses"][-1], "resumed_from": "finished",
                             "losses": saved["losses"]}
            continue
        pending[name] = task.remote(model.model_dump_json(), str(tokenizer_dir), documents, train.model_dump_json(),
                                    str(folder), seed, torch_threads(resources),
                                    device_for(resources, spec.device), f"train {name}", name in drafters,
                                    None if start_from is None else str(start_from))
    results.update(zip(pending, ray.get(list(pending.values()))))
    return {name: results[name] for name in corpora}
