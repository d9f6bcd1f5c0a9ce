"""The served agent's generator: a checkpoint or HF id named in the scenario, or the tiny target trained on
the scenario's world (forget + retain people: the people it "knows"; holdout people are the new ones its
sessions will introduce), then trained as a reader (generator.reader, memorylab/data/reader.py): to answer
from the memories /chat puts before a question. A finished training in the serve folder is reused, so restarts
cost nothing."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Optional

from memorylab.errors import MemorylabError
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
    return train_reader(scenario, world, Path(trained["generator"]["path"]), folder)


def train_reader(scenario: MemoryAgentScenario, world: Any, generator: Path, folder: Path) -> str:
    """The world-trained generator with a reader head (models/reader_head.py) trained on reader examples
    (data/reader.py) in a Ray task with the trainer's resources, kept in models/reader/final: the generator's files
    unchanged, and the head beside them. A head trained with the same settings on the same generator is reused."""
    import ray

    from memorylab.cluster.resources import actor_options, device_for, torch_threads
    from memorylab.data.reader import reader_examples
    from memorylab.data.seeding import derive_seed
    from memorylab.models.reader_head import HEAD_VERSION
    from memorylab.models.reader_training import VALIDATION_EXAMPLES, saved_record, train_head

    reader = scenario.generator.reader
    out = folder / "models" / "reader" / "final"
    # The generator's training log names what it was trained from (and when): a retrained generator retrains
    # its reader.
    log = (generator / "train_log.json").read_bytes() if (generator / "train_log.json").exists() else b""
    # Named relative to the serve folder, so a folder moved or copied elsewhere keeps its reader.
    named = str(generator.relative_to(folder)) if generator.is_relative_to(folder) else str(generator)
    settings = {"generator": named, "generator_log": hashlib.sha256(log).hexdigest()[:16],
                "seed": scenario.seed, "head_version": HEAD_VERSION, **reader.model_dump()}
    saved = saved_record(out)
    if saved is not None and saved.get("settings") == settings:
        return str(out)
    resources = reader_resources(scenario)  # refused before any example is drawn
    examples = reader_examples(world, reader.examples, people=reader.people, distractors=reader.distractors,
                               abstain=reader.abstain, seed=scenario.seed)

    def held_out(purpose: str) -> list:  # examples drawn with their own seed: none is a training example
        return reader_examples(world, VALIDATION_EXAMPLES, people=min(reader.people, 400),
                               distractors=reader.distractors, abstain=reader.abstain,
                               seed=derive_seed(scenario.seed, "reader", purpose))

    validation, calibration = held_out("validation"), held_out("calibration")
    task = ray.remote(train_head).options(**actor_options(resources), max_retries=0)
    record = ray.get(task.remote(str(generator), str(out), examples, validation, steps=reader.steps,
                                 batch_size=reader.batch_size, lr=reader.lr,
                                 shape={"layers": reader.layers, "width": reader.width,
                                        "dropout": reader.dropout, "abstain": reader.abstain}, seed=scenario.seed,
                                 threads=torch_threads(resources), device=device_for(resources, scenario.model.device),
                                 calibration=calibration, settings=settings))
    return record["path"]


def reader_resources(scenario: MemoryAgentScenario) -> Any:
    """The trainer's resources with `generator.reader.num_cpus` CPUs when set; refused in one line when a local
    Ray has fewer (the task would wait for them forever). Its threads follow, so the head is the same whatever
    the machine (cluster/resources.py)."""
    import ray

    trainer = scenario.resources.trainer
    wanted = scenario.generator.reader.num_cpus
    if wanted is None:
        return trainer
    local = not (scenario.ray.address or os.environ.get("RAY_ADDRESS"))
    total = ray.cluster_resources().get("CPU", 0.0)
    if local and wanted > total:
        raise MemorylabError(f"generator.reader.num_cpus {wanted:g}: this Ray has {total:g} CPUs; lower it, or leave "
                             f"it out to train the reader with the trainer's {trainer.num_cpus:g}")
    return trainer.model_copy(update={"num_cpus": wanted})


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
