"""The served agent's generator: a checkpoint or HF id named in the scenario, or the tiny target trained on
the scenario's world (forget + retain people: the people it "knows"; holdout people are the new ones its
sessions will introduce). A finished training in the serve folder is reused, so restarts cost nothing."""

from __future__ import annotations

from pathlib import Path

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
