"""An attack task on a real (tiny) model and world, in-process: every registered attack runs and measures, each
on its own copy of the weights; and the README's example attack, registered from a file outside memorylab."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from memorylab.runners.unlearning.attacks import attack_figures, attack_task
from memorylab.runners.unlearning.data import unlearning_data
from memorylab.scenario_loader import load_scenario
from memorylab.unlearn.attacks import registry
from memorylab.unlearn.attacks.attack import FIGURES, AttackBench

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["world={num_people: 8, forget: 3, holdout: 2, canaries: 1, canary_candidates: 20}",
         "eval.verbmem_max_new_tokens=8", "eval.knowmem_max_new_tokens=4", "scalability=null", "sustainability=null"]
ALL = ["attacks=[{attack: quantize}, {attack: relearn, steps: 2}, {attack: relearn_benign, steps: 2},"
       " {attack: rephrase}, {attack: in_context}]"]


@pytest.fixture(scope="module")
def world_model(tmp_path_factory):
    """A tiny model (untrained: these tests check the plumbing, the e2e test the figures) of the scenario's world."""
    from memorylab.models.tiny import build_tiny_model
    from memorylab.models.tokenizer import train_bpe_tokenizer
    from memorylab.schema.common import TinyModelConfig

    scenario = load_scenario(ROOT / "scenarios" / "unlearn.yaml", SMALL + ALL)
    data = unlearning_data(scenario)
    tokenizer = train_bpe_tokenizer(data.tokenizer_texts, 300)
    model = build_tiny_model(TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                                             vocab_size=300, max_position_embeddings=512), tokenizer, seed=0)
    folder = tmp_path_factory.mktemp("attacked")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return scenario, data, str(folder)


def test_every_attack_runs_on_its_own_copy(world_model):
    scenario, data, path = world_model
    bench = AttackBench(data, scenario.eval, seed=0)
    result = attack_task(list(scenario.attacks), path, None, bench, threads=1, device="cpu")
    assert set(result["attacks"]) == {"quantize_4bit", "quantize_8bit", "relearn", "relearn_benign", "rephrase",
                                      "in_context"}
    assert set(result["unattacked"]) == set(FIGURES)
    # Measured on the same items as the plain evaluation, after every attack: the weights the task loaded are
    # the ones it measured last, so no attack changed them.
    again = attack_task([], path, None, bench, threads=1, device="cpu")
    assert again["unattacked"] == result["unattacked"]
    assert set(result["attacks"]["relearn"].unattacked) == set(FIGURES)  # on the forget people not relearned on
    figures = attack_figures(scenario, {"target": result, "m": result})
    assert figures["m"]["attacks"]["in_context"]["recovered"] == {m: None for m in FIGURES}  # forgot nothing


def test_the_readme_attack_registers_and_runs(world_model, tmp_path, monkeypatch):
    scenario, data, path = world_model
    source = next(b for b in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
                  if b.startswith("# memorylab/unlearn/attacks/noise.py"))
    (tmp_path / "readme_noise.py").write_text(source)
    spec = importlib.util.spec_from_file_location("readme_noise", tmp_path / "readme_noise.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "readme_noise", module)
    spec.loader.exec_module(module)
    monkeypatch.setitem(registry.ATTACKS, "noise", "readme_noise:Noise")
    noise = registry.attack_class("noise")(scale=0.5)
    bench = AttackBench(data, scenario.eval, seed=0)
    result = attack_task([noise], path, None, bench, threads=1, device="cpu")
    assert set(result["attacks"]["noise"].after) == set(FIGURES)


def test_attacks_run_on_tofu(tmp_path):
    """TOFU's long answers: the in-context block shrinks to what fits a 256-token model, relearning trains on QA
    examples, rephrasing asks the paraphrased questions."""
    from memorylab.models.tiny import build_tiny_model
    from memorylab.models.tokenizer import train_bpe_tokenizer
    from memorylab.schema.common import TinyModelConfig

    scenario = load_scenario(ROOT / "scenarios" / "tofu_tiny.yaml", [
        "data.retain_authors=1", "data.retain_eval_items=4", "eval.knowmem_max_new_tokens=4",
        "eval.verbmem_max_new_tokens=4", "attacks=[{attack: relearn, steps: 1, seq_len: 256}, {attack: rephrase},"
        " {attack: in_context}]"])
    data = unlearning_data(scenario)
    data.units[:] = data.units[:2]  # two authors: one relearned on, one measured
    tokenizer = train_bpe_tokenizer(data.tokenizer_texts, 300)
    model = build_tiny_model(TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                                             vocab_size=300, max_position_embeddings=256), tokenizer, seed=0)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    bench = AttackBench(data, scenario.eval, seed=0)
    result = attack_task(list(scenario.attacks), str(tmp_path), None, bench, threads=1, device="cpu")
    assert set(result["attacks"]) == {"relearn", "rephrase", "in_context"}
    assert all(set(o.after) == set(FIGURES) for o in result["attacks"].values())
    from memorylab.models.backends.hf import HFLM
    from memorylab.unlearn.attacks.in_context import InContext

    lm = HFLM.load(str(tmp_path), device="cpu")
    assert InContext(shots=3).fitting_shots(data.eval_data(lm, scenario.eval, None), lm, 4) < 3  # 3 would overflow
