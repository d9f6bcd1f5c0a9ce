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
    from memorylab.cluster.connect import connect
    from memorylab.data import build_world
    from memorylab.data.corpus import corpus, tokenizer_texts
    from memorylab.models.train_jobs import prepare_tokenizer, train_models

    world = build_world(scenario.world, seed=scenario.seed)
    final = folder / "models" / "generator" / "final"
    tokenizer_dir = folder / "tokenizer"
    if not (final / "train_log.json").exists() or not tokenizer_dir.exists():
        prepare_tokenizer(scenario.model, tokenizer_texts(world), tokenizer_dir)
    # Connect the way every command does (a Ray of its own unless an address is named), so a `ray start`
    # cluster on this machine is never joined unasked.
    connect(scenario.ray.address, scenario.ray.num_cpus)
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
    from memorylab.data.corpus import corpus
    from memorylab.models.train_jobs import train_models

    documents = corpus(build_world(scenario.world, seed=scenario.seed), list(KNOWN_SPLITS))
    trained = train_models({"drafter": documents}, scenario.model, scenario.train, scenario.resources.trainer,
                           folder / "tokenizer", folder, scenario.seed, drafters=("drafter",))
    return spec.params(trained["drafter"]["path"])
