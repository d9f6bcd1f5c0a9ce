"""The scenario loader: valid files, overrides, and problems as `FILE:LINE: field.path: message`."""

from __future__ import annotations

from pathlib import Path

import pytest

from memorylab.errors import MemorylabError
from memorylab.scenario_loader import ScenarioError, load_scenario, load_scenario_dict
from memorylab.schema.memorization import MemorizationScenario

MINIMAL = "# memorylab run s.yaml\nname: s\nkind: memorization\n"


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Work in tmp_path, so problem lines name the file as written: `s.yaml:3: ...`."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(text: str, name: str = "s.yaml") -> str:
    Path(name).parent.mkdir(parents=True, exist_ok=True)
    Path(name).write_text(text)
    return name


def problems(path, overrides=()) -> list[str]:
    with pytest.raises(ScenarioError) as e:
        load_scenario(path, overrides)
    assert str(e.value) == "\n".join(e.value.problems)
    return e.value.problems


def test_minimal_file_loads_with_defaults(in_tmp):
    s = load_scenario(write(MINIMAL))
    assert isinstance(s, MemorizationScenario)
    assert (s.name, s.kind, s.train.steps, s.model.name) == ("s", "memorization", 600, "tiny")


def test_overrides_are_typed_by_yaml(in_tmp):
    path = write(MINIMAL + "train:\n  steps: 10\n")
    sets = ["train.lr=1e-3", "train.steps=3", "model.tiny.tie_word_embeddings=false", "ray.num_cpus=2", "seed= 7"]
    s = load_scenario(path, sets)
    assert (s.train.lr, s.train.steps, s.model.tiny.tie_word_embeddings, s.ray.num_cpus, s.seed) == (
        0.001, 3, False, 2, 7
    )
    raw = load_scenario_dict(path, sets)
    # The raw dict keeps YAML's types (1e-3 is a float, not YAML 1.1's string) and creates missing mappings.
    assert raw["train"] == {"steps": 3, "lr": 0.001}
    assert raw["ray"] == {"num_cpus": 2}
    assert raw["model"] == {"tiny": {"tie_word_embeddings": False}}


def test_override_value_can_be_a_list_or_mapping(in_tmp):
    raw = load_scenario_dict(write(MINIMAL), ["resources.model={num_gpus: 0.5}", "extra.list=[1, 2]"])
    assert raw["resources"]["model"] == {"num_gpus": 0.5}
    assert raw["extra"]["list"] == [1, 2]


def test_file_accepts_1e_floats(in_tmp):
    assert load_scenario(write(MINIMAL + "train:\n  lr: 1e-4\n")).train.lr == 1e-4
    assert load_scenario_dict("s.yaml")["train"]["lr"] == 1e-4


def test_dict_is_unvalidated_but_file_problems_raise(in_tmp):
    assert load_scenario_dict(write("name: x\nkind: nope\n")) == {"name": "x", "kind": "nope"}
    with pytest.raises(ScenarioError):
        load_scenario_dict("absent.yaml")


def test_scenario_error_is_a_user_error():
    assert issubclass(ScenarioError, MemorylabError)


def test_all_problems_of_a_file_in_file_order(in_tmp):
    path = write(
        "name: s\n"  # 1
        "kind: memorization\n"  # 2
        "train:\n"  # 3
        "  steps: many\n"  # 4
        "  lrr: 0.1\n"  # 5
        "world:\n"  # 6
        "  num_people: -3\n"  # 7
        "colour: blue\n"  # 8
    )
    found = problems(path)
    assert [p.split(": ", 2)[:2] for p in found] == [
        ["s.yaml:4", "train.steps"],
        ["s.yaml:5", "train.lrr"],
        ["s.yaml:7", "world.num_people"],
        ["s.yaml:8", "colour"],
    ]
    assert found[1] == (
        "s.yaml:5: train.lrr: unknown key (did you mean 'lr'?); expected one of: steps, batch_size, seq_len, lr, "
        "min_lr_ratio, warmup_steps, weight_decay, grad_clip, checkpoint_every, loss"
    )


def test_override_problems_name_set_and_come_with_file_problems(in_tmp):
    path = write(MINIMAL + "colour: blue\n")
    assert problems(path, ["train.lr=-1", "oops", "=3", "name.x=1", "train..lr=1"]) == [
        "s.yaml:4: colour: unknown key; expected one of: name, kind, description, seed, world, model, train, eval, "
        "resources, ray",
        "s.yaml:--set: oops: expected a.b.c=VALUE, got 'oops'",
        "s.yaml:--set: set: expected a dotted path before '=', got '=3'",
        "s.yaml:--set: name.x: name is a string, not a mapping or a list, so it has no key 'x'",
        "s.yaml:--set: train..lr: expected a dotted path before '=', got 'train..lr=1'",
        "s.yaml:--set: train.lr: Input should be greater than 0 (got -1)",
    ]


UNLEARN = (
    "# memorylab run s.yaml\nname: s\nkind: unlearning\nworld: {num_people: 12, forget: 2, holdout: 2}\n"
    "methods:\n  - {method: grad_ascent, lr: 1.0e-4}\n  - {method: npo, lr: 2.0e-4}\n"
)


def test_override_enters_list_items_by_position(in_tmp):
    path = write(UNLEARN)
    s = load_scenario(path, ["methods.1.lr=5e-4", "methods.0.steps=3"])
    assert [(m.method, m.lr) for m in s.methods] == [("grad_ascent", 1e-4), ("npo", 5e-4)]
    assert s.methods[0].steps == 3
    # A whole item can be replaced too, and a problem inside an item set by --set is blamed on --set.
    s = load_scenario(path, ["methods.0={method: simnpo, lr: 1.0e-5}"])
    assert (s.methods[0].method, s.methods[0].lr) == ("simnpo", 1e-5)
    assert problems(path, ["methods.1.lr=-1"]) == ["s.yaml:--set: methods.1.lr: Input should be greater than 0 (got -1)"]


def test_override_list_positions_that_do_not_exist_are_refused(in_tmp):
    path = write(UNLEARN)
    assert problems(path, ["methods.2.lr=1", "methods.first.lr=1", "methods.-1.lr=1", "methods.0.lr.x=1"]) == [
        "s.yaml:--set: methods.2.lr: methods is a list of 2 item(s); '2' is not one of its positions 0..1",
        "s.yaml:--set: methods.first.lr: methods is a list of 2 item(s); 'first' is not one of its positions 0..1",
        "s.yaml:--set: methods.-1.lr: methods is a list of 2 item(s); '-1' is not one of its positions 0..1",
        "s.yaml:--set: methods.0.lr.x: methods.0.lr is a number, not a mapping or a list, so it has no key 'x'",
    ]
    with pytest.raises(ScenarioError) as e:
        load_scenario_dict(write(MINIMAL + "extra: []\n", "t.yaml"), ["extra.0=1"])
    assert e.value.problems == ["t.yaml:--set: extra.0: extra is a list of 0 item(s); '0' is not one of its positions: it is empty"]


def test_override_breaking_a_model_validator_names_set_when_file_omits_the_mapping(in_tmp):
    path = write(MINIMAL)
    assert problems(path, ["world.forget=50"]) == [
        "s.yaml:--set: world: forget (50) + holdout (6) must leave at least one retain person out of num_people (48)"
    ]


def test_duplicate_key_is_reported(in_tmp):
    path = write(MINIMAL + "seed: 1\nseed: 2\n")
    assert problems(path) == ["s.yaml:5: seed: duplicate key; line 4 sets it too"]


def test_merge_keys_work_and_fall_back_to_the_mapping_line(in_tmp):
    text = MINIMAL + "base: &b\n  lr: -1\n" + "train:\n  <<: *b\n  steps: 5\n"
    found = problems(write(text))
    assert "s.yaml:4: base: unknown key" in found[0]
    assert found[1] == "s.yaml:6: train.lr: Input should be greater than 0 (got -1)"


def test_local_model_path_is_resolved_next_to_the_scenario(in_tmp):
    path = write(MINIMAL + "model:\n  name: ./ckpt\n", name="sub/s.yaml")
    found = problems(path)
    assert found == [f"sub/s.yaml:5: model.name: no such file or directory: {in_tmp / 'sub' / 'ckpt'}"]
    (in_tmp / "sub" / "ckpt").mkdir()
    # Read as written next to the scenario, wherever the command runs from; the raw config says so too.
    assert load_scenario(path).model.name == str(in_tmp / "sub" / "ckpt")
    assert load_scenario_dict(path)["model"]["name"] == "./ckpt"  # unvalidated: as the file has it


def test_reference_models_are_local_paths_checked_and_resolved_too(in_tmp):
    continual = ("# memorylab run s.yaml\nname: s\nkind: continual\nreference: {base: ../out/models/base/final}\n"
                 "arms: [{name: a, max_lr: 1.0e-3}]\n")
    path = write(continual, name="sub/s.yaml")
    assert problems(path) == [f"sub/s.yaml:4: reference.base: no such file or directory: {in_tmp / 'out/models/base/final'}"]
    (in_tmp / "out" / "models" / "base" / "final").mkdir(parents=True)
    assert load_scenario(path).reference.base == str(in_tmp / "out" / "models" / "base" / "final")
    unlearning = UNLEARN + "reference: {target: ./t, retrain: EleutherAI/pythia-70m}\n"
    assert problems(write(unlearning)) == [f"s.yaml:8: reference.target: no such file or directory: {in_tmp / 't'}"]


def test_a_sweeps_storage_path_is_an_output_that_need_not_exist(in_tmp):
    inner = "scenario: {name: inner, kind: memorization}\nspace: {train.lr: {choice: [0.001, 0.002]}}\n"
    sweep = f"name: sw\nkind: sweep\nstorage_path: ./not-yet\n{inner}objectives: [{{name: v, minimize: models.target.ppl_holdout}}]\n"
    assert Path(load_scenario(write(sweep)).storage_path) == Path("not-yet")  # not checked: made by the run


def test_hub_ids_and_tiny_are_not_paths(in_tmp):
    assert load_scenario(write(MINIMAL + "model:\n  name: EleutherAI/pythia-70m\n")).model.name.startswith("Eleuther")


def test_home_path_is_expanded(in_tmp, monkeypatch):
    monkeypatch.setenv("HOME", str(in_tmp))
    path = write(MINIMAL + "model:\n  name: ~/weights\n")
    assert problems(path) == [f"s.yaml:5: model.name: no such file or directory: {in_tmp / 'weights'}"]
    (in_tmp / "weights").mkdir()
    load_scenario(path)


def test_every_problem_is_one_line(in_tmp):
    path = write("name: 'a\n  b'\nkind: memorization\nworld: 5\nmodel:\n  dtype: int8\n")
    for line in problems(path):
        assert "\n" not in line and line.startswith("s.yaml:")


def test_seeds_are_refused_where_numpy_torch_or_optuna_would_refuse_them_after_training(in_tmp):
    path = write(MINIMAL + "seed: -1\nworld: {seed: 4294967296}\n")
    assert problems(path) == ["s.yaml:4: seed: Input should be greater than or equal to 0 (got -1)",
                              "s.yaml:5: world.seed: Input should be less than 4294967296 (got 4294967296)"]
    assert load_scenario(path, ["seed=4294967295", "world.seed=0"]).seed == 2**32 - 1
