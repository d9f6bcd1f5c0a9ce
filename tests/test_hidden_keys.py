"""API keys never leave in a dump (issue 19, defect 5): every serialization of a scenario hides them, every
report writer hides them in raw mappings too, and only the hand-off to Serve keeps them."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from memorylab.hidden_keys import HIDDEN_KEY, REVEAL_KEYS, hide_keys
from memorylab.report import write_json
from memorylab.schema.memory_agent import MemoryAgentScenario

SECRET = "s3cret-key-do-not-leak"
SCENARIO = {"name": "a", "kind": "memory_agent", "serve": {"api_keys": [{"tenant": "t", "key": SECRET}]}}


def test_a_scenario_dumps_without_its_keys():
    scenario = MemoryAgentScenario.model_validate(SCENARIO)
    for dumped in (scenario.model_dump(mode="json"), scenario.model_dump(), json.loads(scenario.model_dump_json())):
        assert SECRET not in json.dumps(dumped, default=str)
        assert dumped["serve"]["api_keys"] == [{"tenant": "t", "key": HIDDEN_KEY}]
    # A dump read back as a scenario cannot serve with the hidden key: it is refused, not used.
    with pytest.raises(ValidationError, match="key"):
        MemoryAgentScenario.model_validate(scenario.model_dump(mode="json"))


def test_only_the_serve_handoff_keeps_them():
    scenario = MemoryAgentScenario.model_validate(SCENARIO)
    revealed = scenario.model_dump(mode="json", context=REVEAL_KEYS)
    assert revealed["serve"]["api_keys"][0]["key"] == SECRET
    assert MemoryAgentScenario.model_validate(revealed) == scenario


def test_every_report_hides_keys_of_raw_mappings(tmp_path):
    report = {"raw_config": {"agent": SCENARIO, "list": [SCENARIO]}, "config": {"agent": SCENARIO}, "n": 1}
    write_json(tmp_path / "report.json", report)
    text = (tmp_path / "report.json").read_text()
    assert SECRET not in text and json.loads(text)["n"] == 1
    assert hide_keys(report)["config"]["agent"]["serve"]["api_keys"] == [{"tenant": "t", "key": HIDDEN_KEY}]
    assert report["config"]["agent"]["serve"]["api_keys"][0]["key"] == SECRET  # the caller's mapping is untouched
