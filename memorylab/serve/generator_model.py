"""The served agent's generator: a checkpoint or HF id named in the scenario, or the tiny target trained on
the scenario's world (forget + retain people: the people it "knows"; holdout people are the new ones its
sessions will introduce). A finished training in the serve folder is reused, so restarts cost nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from memorylab.schema.memory_agent import MemoryAgentScenario

KNOWN_SPLITS = ("forget", "retain")


def prepare_generator(scenario: MemoryAgentScenario, folder: Path) -> str:
    if scenario.generator.source == "path":
        return str(scenario.generator.path)
    import ray

    from memorylab.data import build_world
    from memorylab.runners.world_models import corpus, prepare_tokenizer, tokenizer_texts, train_models

    world = build_world(scenario.world, seed=scenario.seed)
    final = folder / "models" / "generator" / "final"
    tokenizer_dir = folder / "tokenizer"
    if not (final / "train_log.json").exists() or not tokenizer_dir.exists():
        prepare_tokenizer(scenario.model, tokenizer_texts(world), tokenizer_dir)
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True)
    trained = train_models({"generator": corpus(world, list(KNOWN_SPLITS))}, scenario.model, scenario.train,
                           scenario.resources.trainer, tokenizer_dir, folder, scenario.seed)
    return trained["generator"]["path"]


def generator_speculative(scenario: MemoryAgentScenario, folder: Path) -> Optional[Any]:
    """The SpeculativeParams of `generator.speculative` (None when unset). Drafter 'train': a 1-layer tiny
    drafter trained on the generator's corpus with the generator's tokenizer and training settings, kept in the
    serve folder (reused on restart) with its token counts for VocabTrim; call after prepare_generator."""
    spec = scenario.generator.speculative
    if spec is None or spec.drafter != "train":
        return None if spec is None else spec.params()
    from memorylab.data import build_world
    from memorylab.decoding.vocabtrim import corpus_counts, save_counts
    from memorylab.models.drafter import drafter_config
    from memorylab.runners.world_models import corpus, train_models
    from transformers import AutoTokenizer

    documents = corpus(build_world(scenario.world, seed=scenario.seed), list(KNOWN_SPLITS))
    model = scenario.model.model_copy(update={"tiny": drafter_config(scenario.model.tiny, num_layers=1)})
    trained = train_models({"drafter": documents}, model, scenario.train, scenario.resources.trainer,
                           folder / "tokenizer", folder, scenario.seed)
    path = Path(trained["drafter"]["path"])
    save_counts(path, corpus_counts(AutoTokenizer.from_pretrained(folder / "tokenizer"), documents), "corpus")
    return spec.params(str(path))
