"""Where generation paths meet speculative decoding: a ModelActor hosting target (or ULD) and drafter side by
side (in-process and on Ray), the eval.speculative and generator.speculative switches, and the default
GenerationParams left as they were."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
from pydantic import ValidationError

from memorylab.actors import RemoteLM, create_model_actor
from memorylab.actors.model_actor import ModelActor
from memorylab.decoding.vocabtrim import save_counts
from memorylab.evaluation import knowmem_questions, verbmem_pairs
from memorylab.models.protocol import GenerationParams, SpeculativeParams
from memorylab.schema.common import ActorResources, EvalConfig, ModelSpec, SpeculativeConfig
from memorylab.schema.memorization import MemorizationScenario
from memorylab.schema.memory_agent import GeneratorConfig, MemoryAgentScenario


@pytest.fixture(scope="module")
def folders(tmp_path_factory, target, drafter, uld, tokenizer) -> dict[str, str]:
    out = {}
    for name, model in (("target", target.model), ("drafter", drafter.lm.model), ("assistant", uld.assistant.model)):
        path = tmp_path_factory.mktemp(name)
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        out[name] = str(path)
    save_counts(out["drafter"], drafter.counts, "corpus")
    return out


def test_default_generation_params_are_unchanged():
    assert GenerationParams().speculative is None
    assert GenerationParams() == GenerationParams(max_new_tokens=32, temperature=0.0, top_p=1.0, seed=None, stop=())
    with pytest.raises(ValueError, match="gamma"):
        SpeculativeParams(gamma=0)


@pytest.mark.parametrize("uld_actor", [False, True], ids=["target", "uld"])
def test_actor_hosts_the_drafter_beside_its_model(folders, prompts, uld_actor):
    spec = SpeculativeParams(drafter=folders["drafter"], gamma=3, vocab=80)
    kwargs = dict(device="cpu", batch_size=8, assistant_source=folders["assistant"] if uld_actor else None)
    plain = ModelActor("target", folders["target"], **kwargs)
    drafted = ModelActor("target", folders["target"], speculative=spec, **kwargs)
    assert drafted.info()["speculative"]["vocab"] == 80
    params = GenerationParams(max_new_tokens=12)
    assert drafted.generate(prompts[::6], params) == plain.generate(prompts[::6], params)
    assert 0 < drafted.speculative_stats()["acceptance_rate"] < 1 and plain.speculative_stats() is None


def test_drafter_actor_on_ray(ray_cluster, folders, target, prompts):
    spec = SpeculativeParams(drafter=folders["drafter"], gamma=4)
    handle = create_model_actor("target", folders["target"], ModelSpec(device="cpu"), ActorResources(num_cpus=0.5),
                                batch_size=8, speculative=spec)
    try:
        params = GenerationParams(max_new_tokens=12)
        assert RemoteLM(handle).generate(prompts[::8], params) == target.generate(prompts[::8], params)
        assert ray.get(handle.speculative_stats.remote())["drafted"] > 0
    finally:
        ray.kill(handle)
    # A drafter can also be an actor's own model (role drafter): an ordinary LM, e.g. to score it.
    assert ModelActor("drafter", folders["drafter"], device="cpu").info()["role"] == "drafter"


def test_eval_switch_gives_the_same_verbmem_and_knowmem(folders, target, corpus):
    from memorylab.data import QA

    plain_cfg = EvalConfig(verbmem_max_new_tokens=10, knowmem_max_new_tokens=8)
    spec_cfg = EvalConfig(verbmem_max_new_tokens=10, knowmem_max_new_tokens=8,
                          speculative={"drafter": folders["drafter"], "gamma": 3})
    pairs = [(" ".join(t.split()[:3]), " ".join(t.split()[3:])) for t in corpus[:16]]
    drafted = verbmem_pairs(target, pairs, spec_cfg)
    assert target.speculative_stats is not None
    assert drafted == verbmem_pairs(target, pairs, plain_cfg)
    qas = [QA(f"Where does {t.split()[0]} live?", t.split()[2], f"p{i}", "city") for i, t in enumerate(corpus[:8])]
    assert knowmem_questions(target, qas, qas, spec_cfg) == knowmem_questions(target, qas, qas, plain_cfg)


def test_switches_validate_at_load(tmp_path, monkeypatch):
    # eval.speculative.drafter 'train': the memorization and unlearning runners train it, for tiny models only.
    with pytest.raises(ValidationError, match="memorization and unlearning runs, not memory_agent"):
        MemoryAgentScenario(name="a", kind="memory_agent", eval={"speculative": {"drafter": "train"}})
    with pytest.raises(ValidationError, match="tiny drafter for a tiny target"):
        MemorizationScenario(name="a", kind="memorization", model={"name": "org/model"},
                             eval={"speculative": {"drafter": "train"}})
    assert MemorizationScenario(name="a", kind="memorization", eval={"speculative": {"drafter": "train"}})
    with pytest.raises(ValidationError, match="source: train"):
        GeneratorConfig(source="path", path="some/model", speculative={"drafter": "train"})
    assert GeneratorConfig(speculative={"drafter": "train"}).speculative.drafter == "train"
    with pytest.raises(ValidationError, match="tiny drafter"):
        MemoryAgentScenario(name="a", kind="memory_agent", model={"name": "org/model"},
                            generator={"speculative": {"drafter": "train"}})
    with pytest.raises(ValidationError):
        SpeculativeConfig(drafter="x", gamma=0)
    # A folder is made absolute (actors may run elsewhere); anything else is an HF id, kept as written.
    (tmp_path / "drafter").mkdir()
    monkeypatch.chdir(tmp_path)
    assert SpeculativeConfig(drafter="drafter").drafter == str(Path(tmp_path / "drafter").resolve())
    assert SpeculativeConfig(drafter="org/small-model", gamma=12, vocab=512).params() == SpeculativeParams(
        drafter="org/small-model", gamma=12, max_gamma=12, vocab=512)


def test_served_generator_trains_its_drafter_beside_it(tmp_path, monkeypatch, tokenizer):
    from memorylab.models import train_jobs
    from memorylab.serve.generator_model import generator_speculative

    tokenizer.save_pretrained(tmp_path / "tokenizer")
    calls = []

    def fake_train_models(corpora, spec, train, resources, tokenizer_dir, out_dir, seed, drafters=()):
        calls.append(train_jobs.drafter_spec(spec) if "drafter" in drafters else spec)
        (out_dir / "models" / "drafter" / "final").mkdir(parents=True)
        return {"drafter": {"path": str(out_dir / "models" / "drafter" / "final")}}

    monkeypatch.setattr(train_jobs, "train_models", fake_train_models)
    scenario = MemoryAgentScenario(name="agent", kind="memory_agent",
                                   world={"num_people": 8, "forget": 2, "holdout": 2},
                                   generator={"speculative": {"drafter": "train", "gamma": 3, "vocab": 100}})
    spec = generator_speculative(scenario, tmp_path)
    assert calls[0].tiny.num_layers == 1 and calls[0].tiny.vocab_size == scenario.model.tiny.vocab_size
    assert spec == SpeculativeParams(drafter=str(tmp_path / "models" / "drafter" / "final"), gamma=3, vocab=100)
    scenario = MemoryAgentScenario(name="agent", kind="memory_agent")
    assert generator_speculative(scenario, tmp_path) is None
