"""The method registry: the scenario schema accepts exactly the registered methods, each validated by its own
settings class; and a new method is one file plus one registry line (the README's example, from a file outside
memorylab, validated in a scenario and run as an unlearning job)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from memorylab.scenario_loader import ScenarioError, load_scenario
from memorylab.schema.unlearning import UnlearningScenario
from memorylab.unlearn.method import LossMethod, MethodSettings
from memorylab.unlearn.registry import METHODS, method_class

README = Path(__file__).resolve().parents[2] / "README.md"


def scenario(*methods: dict) -> UnlearningScenario:
    return UnlearningScenario.model_validate({"name": "u", "kind": "unlearning", "methods": list(methods)})


def test_the_schema_takes_exactly_the_registered_methods(tmp_path):
    for name in METHODS:
        cls = method_class(name)
        assert issubclass(cls, MethodSettings)
        assert type(scenario({"method": name}).methods[0]) is cls
    path = tmp_path / "u.yaml"
    path.write_text("name: u\nkind: unlearning\nmethods:\n  - method: scrub\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert err.value.problems == [f"{path}:4: methods.0: unknown method 'scrub'; expected one of: grad_ascent, "
                                  "grad_diff, npo, simnpo, rmu, uld"]


def test_defaults_live_in_the_settings_class_alone():
    """What a scenario gets when it names only the method is the class's defaults, whatever the loop does."""
    npo, uld = scenario({"method": "npo"}, {"method": "uld"}).methods
    assert (npo.steps, npo.lr, npo.beta, npo.retain_weight, npo.grad_clip) == (40, 5e-4, 0.1, 1.0, 1.0)
    assert (uld.steps, uld.lr, uld.grad_clip, uld.layers) == (80, 1e-3, None, 1)
    assert isinstance(npo, LossMethod) and not isinstance(uld, LossMethod)
    assert npo.hparams() == {k: v for k, v in npo.model_dump().items() if k not in ("method", "label")}


def test_a_method_s_own_scenario_checks_refuse_at_load():
    with pytest.raises(ValidationError, match="uld layers \\(4\\) must be fewer than the target's 4 layers"):
        scenario({"method": "uld", "layers": 4})


def readme_method() -> tuple[str, str]:
    """The README's example method file and its registry line."""
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    source = next(b for b in blocks if b.startswith("# memorylab/unlearn/confident_ascent.py"))
    line = next(b for b in blocks if '"confident_ascent":' in b).strip()
    return source, line


RUN = '''
import json, sys
from pathlib import Path
from memorylab.unlearn import registry
registry.METHODS.update({{{line}}})  # the README's registry line
from memorylab.scenario_loader import ScenarioError, load_scenario
from memorylab.unlearn.method import UnlearnJob

folder, model = Path(sys.argv[1]), sys.argv[2]
good = folder / "good.yaml"
good.write_text("name: u\\nkind: unlearning\\nmethods:\\n  - method: confident_ascent\\n    top: 0.3\\n"
                "    steps: 3\\n    batch_size: 2\\n    seq_len: 64\\n")
bad = folder / "bad.yaml"
bad.write_text("name: u\\nkind: unlearning\\nmethods:\\n  - method: confident_ascent\\n    topp: 0.3\\n")
try:
    load_scenario(bad)
    problems = []
except ScenarioError as e:
    problems = e.problems
method = load_scenario(good).methods[0]
docs = ["Ada Park was born in Lisbon and works as a pilot.", "Bo Lee was born in Oslo and works as a baker."]
result = method.unlearn(UnlearnJob(model, model, docs, docs, str(folder / "out"), show_progress=False))
print(json.dumps({{"type": type(method).__name__, "problems": problems, "path": result.path,
                  "assistant": result.assistant, "loss": result.final_loss}}))
'''


def test_a_new_method_is_one_file_and_one_registry_line(tmp_path, tiny_model_dir):
    source, line = readme_method()
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    # The README's file, as a module of its own outside memorylab (the registry line names where it lives).
    (plugins / "confident_ascent.py").write_text(source)
    line = line.replace("memorylab.unlearn.confident_ascent:", "confident_ascent:").rstrip(",")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", RUN.format(line=line), str(tmp_path), tiny_model_dir],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["type"] == "ConfidentAscent" and result["assistant"] is None
    assert Path(result["path"], "config.json").exists() and isinstance(result["loss"], float)
    assert result["problems"] == [f"{tmp_path / 'bad.yaml'}:5: methods.0.topp: unknown key (did you mean 'top'?); "
                                  "expected one of: method, label, steps, lr, batch_size, seq_len, warmup_steps, "
                                  "grad_clip, retain_weight, top"]
