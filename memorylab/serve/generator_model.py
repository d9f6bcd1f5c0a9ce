"""The served agent's generator: a checkpoint or HF id named in the scenario, or the tiny target trained on
the scenario's world (forget + retain people: the people it "knows"; holdout people are the new ones its
sessions will introduce). A finished training in the serve folder is reused, so restarts cost nothing."""

from __future__ import annotations

from pathlib import Path

from memorylab.schema.memory_agent import MemoryAgentScenario

KNOWN_SPLITS = ("forget", "retain")
READING_DISTRACTORS = 4  # other facts around the one that answers, in each reading document


def reading_documents(world, seed: int, people: int) -> list[str]:
    """Documents that teach the generator to answer from memories placed before a question, in exactly the
    layout the agent's prompts use (serve/prompts.py): a few fact sentences, one of them answering, then the
    question and its answer.

    They are about extra people who appear nowhere else in training, so the answer can only be read from the
    context: with the world's own people the model can answer from its weights and never learns to look.
    Without such documents a model trained on biographies and QA pairs ignores the memories it is shown and
    guesses about the people it is told about at serving time (measured: exact match 0 on the agent eval)."""
    from memorylab.data.people import generate_people
    from memorylab.data.seeding import derive_seed, rng_for
    from memorylab.data.templates import render_fact, render_question
    from memorylab.serve.prompts import answer_text

    rng = rng_for(seed, "reading-documents")
    taken = {p.name for p in world.people}
    strangers = [p for p in generate_people(derive_seed(seed, "reading-people"), people) if p.name not in taken]
    facts = [(p, a, render_fact(a, rng.randrange(world.config.paraphrases), p.name, v))
             for p in strangers for a, v in p.attributes.items()]
    documents = []
    for person, attribute, text in facts:
        context = [text] + [rng.choice(facts)[2] for _ in range(READING_DISTRACTORS)]
        rng.shuffle(context)
        documents.append(answer_text(context, render_question(attribute, person.name)) + " "
                         + person.attributes[attribute])
    return documents


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
    known = sum(len(world.people_in(split)) for split in KNOWN_SPLITS)
    documents = corpus(world, list(KNOWN_SPLITS)) + reading_documents(world, scenario.seed, people=2 * known)
    trained = train_models({"generator": documents}, scenario.model, scenario.train,
                           scenario.resources.trainer, tokenizer_dir, folder, scenario.seed)
    return trained["generator"]["path"]
