"""The continual schema: the example loads, and every setting that would stop a run fails at load time with
one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from memorylab.scenario_loader import ScenarioError, load_scenario
from memorylab.schema.continual import ContinualScenario

EXAMPLE = Path(__file__).parents[2] / "scenarios" / "continual_replay.yaml"
BASE = {"name": "c", "kind": "continual", "continual": {"steps": 50, "eval_every": 10},
        "arms": [{"name": "a", "max_lr": 1e-3}], "retention": {"insert_at": 10, "repeats": [1, 4]}}


def problems(tmp_path, **changes) -> list[str]:
    data = {**BASE, **changes}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    return e.value.problems


def test_the_example_loads_with_its_arms():
    s = load_scenario(EXAMPLE)
    assert isinstance(s, ContinualScenario)
    assert EXAMPLE.read_text().startswith("# memorylab run scenarios/continual_replay.yaml")
    assert {a.replay for a in s.arms} >= {0.0, 0.25} and len({a.max_lr for a in s.arms}) >= 2
    assert s.retention is not None and s.retention.last_insertion < s.continual.steps


@pytest.mark.parametrize("changes, field, words", [
    ({"retention": {"insert_at": 48, "repeats": [1, 4]}}, "file", "inserted up to step 51"),
    ({"continual": {"steps": 50, "eval_every": 60}}, "file", "continual.eval_every (60) is more than continual.steps"),
    ({"arms": [{"name": "a", "max_lr": 1e-3, "schedule": "infinite", "cooldown": 0.6, "anneal": 0.5}]}, "arms.0",
     "cooldown (0.6) + anneal (0.5) must be at most 1"),
    ({"arms": [{"name": "a", "max_lr": 1e-3}, {"name": "a", "max_lr": 1e-4}]}, "file",
     "arm names must be unique; repeated: a"),
    ({"arms": [{"name": "a", "max_lr": 1e-3, "warmup_steps": 50}]}, "file", "arm 'a': warmup_steps (50) must be fewer"),
    ({"arms": [{"name": "a", "max_lr": 1e-3, "warmup_steps": 49}]}, "file",
     "arm 'a': a cosine schedule needs two steps after warm-up to decay to min_lr; warmup_steps (49) leaves 1"),
    ({"arms": [{"name": "a", "max_lr": 1e-3, "replay": 0.1}]}, "file",
     "arm 'a': replay 0.1 of continual.batch_size 16 is 1.6 rows a batch; it must be a whole number of rows"),
    ({"continual": {"steps": 50, "eval_every": 10, "batch_size": 2}, "arms": [{"name": "a", "max_lr": 1e-3,
                                                                              "replay": 0.25}]}, "file",
     "replay 0.25 of continual.batch_size 2 is 0.5 rows"),
    ({"arms": [{"name": "a", "max_lr": 1e-3, "min_lr": 1e-2}]}, "arms.0", "min_lr (0.01) must not exceed max_lr"),
    ({"arms": [{"name": "a", "max_lr": 1e-3, "replay": 1.5}]}, "arms.0.replay", "less than or equal to 1"),
    ({"arms": [{"name": "a", "max_lr": 1e-3, "replya": 0.5}]}, "arms.0.replya", "did you mean 'replay'"),
    ({"arms": []}, "arms", "at least 1 item"),
    ({"retention": {"repeats": [4, 1]}}, "retention", "repeats must increase strictly"),
    ({"new_data": {"domain": "poetry"}}, "new_data.domain", "'news' or 'records'"),
])
def test_bad_settings_fail_with_one_line_naming_the_field(tmp_path, changes, field, words):
    lines = problems(tmp_path, **changes)
    assert len(lines) == 1, lines
    assert f": {field}: " in lines[0] and words in lines[0], lines[0]
    assert "\n" not in lines[0]


def test_retention_can_be_switched_off(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, "retention": None}))
    assert load_scenario(path).retention is None
