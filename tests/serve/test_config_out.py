"""`memorylab serve FILE --config-out OUT`: a Serve config that Ray Serve's own schema takes as written, whose
args build the same agent through the app's own validation; nothing is served and no Ray starts."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import ray
import yaml
from ray.serve.schema import ServeDeploySchema
from typer.testing import CliRunner

from memorylab.cli import app
from memorylab.errors import MemorylabError
from memorylab.scenario_loader import load_scenario
from memorylab.serve.app import BuildArgs, load_agent_scenario
from memorylab.serve.config_out import check_serve_config

SCENARIOS = Path(__file__).parents[2] / "scenarios"
AGENT = SCENARIOS / "agent.yaml"


def write_config(tmp_path: Path, *options: str) -> tuple[dict, str]:
    out = tmp_path / "serve_config.yaml"
    result = CliRunner().invoke(app, ["serve", str(AGENT), "--config-out", str(out), *options])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    return yaml.safe_load(out.read_text()), out.read_text()


def built_scenario(application: dict):
    """What build_app would serve: its own argument model and scenario loader."""
    args = BuildArgs.model_validate(application["args"])
    return load_agent_scenario(args.scenario, args.overrides), args


def test_the_config_is_ray_serves_and_builds_the_scenario(tmp_path):
    config, text = write_config(tmp_path, "--folder", "/mnt/memorylab/agent",
                                "--set", "memory.retrieval.top_k=7")
    assert not ray.is_initialized()  # nothing served, no Ray started
    assert ServeDeploySchema.model_validate(config).model_dump(mode="json", exclude_unset=True) == config
    assert config["http_options"] == {"host": "0.0.0.0", "port": 8000}  # reachable through a cluster Service
    (application,) = config["applications"]
    assert application["name"] == "memorylab" and application["route_prefix"] == "/"
    module, attr = application["import_path"].split(":")
    assert getattr(importlib.import_module(module), attr).__name__ == "build_app"

    scenario, args = built_scenario(application)
    assert args.folder == "/mnt/memorylab/agent" and args.overrides == []
    assert scenario.memory.retrieval.top_k == 7  # --set is applied before the scenario goes inline
    as_file = load_scenario(AGENT, ["memory.retrieval.top_k=7"])
    assert scenario.model_dump(exclude={"serve"}) == as_file.model_dump(exclude={"serve"})
    # Keys never go into a file meant for manifests and git; the pods get MEMORYLAB_API_KEYS instead.
    assert scenario.serve.api_keys == [] and "demo-key-change-me" not in text
    assert text.startswith("# Ray Serve config")


def test_host_and_port_options_win(tmp_path):
    config, _ = write_config(tmp_path, "--host", "127.0.0.1", "--port", "8123")
    assert config["http_options"] == {"host": "127.0.0.1", "port": 8123}
    assert "folder" not in config["applications"][0]["args"]  # unset: build_app's default


def test_only_agents_have_a_serve_config(tmp_path):
    out = tmp_path / "c.yaml"
    result = CliRunner().invoke(app, ["serve", str(SCENARIOS / "quickstart.yaml"), "--config-out", str(out)])
    assert result.exit_code == 2 and "needs kind: memory_agent" in result.output
    assert not out.exists()


def test_an_unwritable_destination_is_one_line(tmp_path):
    out = tmp_path / "missing" / "c.yaml"
    result = CliRunner().invoke(app, ["serve", str(AGENT), "--config-out", str(out)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: cannot write {out}: No such file or directory"


@pytest.mark.parametrize("mutate, field", [
    (lambda c: c["http_options"].update(hots="0.0.0.0"), "http_options.hots"),
    (lambda c: c["applications"][0].update(route_prefx="/"), "applications[0].route_prefx"),
])
def test_a_misspelt_serve_option_is_named(tmp_path, mutate, field):
    """Ray Serve's schema drops unknown keys silently; the check names them instead."""
    config, _ = write_config(tmp_path)
    mutate(config)
    with pytest.raises(MemorylabError, match=f"^Serve config: {re.escape(field)}: not a Ray Serve setting$"):
        check_serve_config(config)
