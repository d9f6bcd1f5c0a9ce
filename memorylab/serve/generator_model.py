"""The served agent's generator: a checkpoint or HF id named in the scenario, or the tiny target trained on
the scenario's world (forget + retain people: the people it "knows"; holdout people are the new ones its
sessions will introduce), then trained as a reader (generator.reader, memorylab/data/reader.py): to answer
from the memories /chat puts before a question. A finished training in the serve folder is reused, so restarts
cost nothing."""

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
    documents = corpus(world, list(KNOWN_SPLITS))
    trained = train_models({"generator": documents}, scenario.model, scenario.train, scenario.resources.trainer,
                           tokenizer_dir, folder, scenario.seed)
    if scenario.generator.reader.steps == 0:
        return trained["generator"]["path"]
    return train_reader(scenario, world, documents, Path(trained["generator"]["path"]), folder)


def train_reader(scenario: MemoryAgentScenario, world: Any, documents: list[str], generator: Path,
                 folder: Path) -> str:
    """The world-trained generator trained further (models/reader) on reader examples, with the world's corpus
    replayed beside them so that what it knows stays known; the examples are scored on their answers only, and
    every row weighs the same (loss: row), or the corpus's long rows would drown the answers' few tokens."""
    from memorylab.data.reader import reader_documents
    from memorylab.models.train_jobs import train_models

    reader = scenario.generator.reader
    train = scenario.train.model_copy(update={"steps": reader.steps, "lr": reader.lr, "loss": "row",
                                              "seq_len": scenario.model.tiny.max_position_embeddings})
    mixed = reader_documents(world, documents, reader, seed=scenario.seed)
    trained = train_models({"reader": mixed}, scenario.model, train, scenario.resources.trainer, folder / "tokenizer",
                           folder, scenario.seed, start_from=generator)
    return trained["reader"]["path"]


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
