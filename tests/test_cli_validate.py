"""`memorylab validate` and the checks `memorylab run` makes before it starts anything.

Each malformed scenario must give exactly its `FILE:LINE: field: message` lines on stderr and exit code 2.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memorylab import __version__
from memorylab.cli import app
from memorylab.errors import MemorylabError
from memorylab.runners.contract import RunContext
from memorylab.scenario import KINDS

MINIMAL = "name: s\nkind: memorization\n"

# (id, file text, expected stderr lines as (prefix up to the message, a fragment of the message))
MALFORMED = [
    ("yaml-syntax", "name: s\nkind: memorization\ntrain:\n  lr: 1\n steps: 3\n",
     [("bad.yaml:5: yaml: ", "expected <block end>")]),
    ("yaml-unclosed-quote", "name: 's\nkind: memorization\n",
     [("bad.yaml:3: yaml: ", "found unexpected end of stream")]),
    ("yaml-unsafe-tag", MINIMAL + "seed: !!python/object/apply:os.system [ls]\n",
     [("bad.yaml:3: yaml: ", "could not determine a constructor")]),
    ("control-character", MINIMAL + "description: \"a\x01\"\n",
     [("bad.yaml:3: yaml: ", "unacceptable character #x0001")]),
    ("top-level-list", "- name: s\n- kind: memorization\n",
     [("bad.yaml:1: file: ", "expected a mapping of settings at the top, got a list")]),
    ("empty-file", "", [("bad.yaml:1: file: ", "empty file")]),
    ("only-comments", "# nothing here\n", [("bad.yaml:1: file: ", "empty file")]),
    ("unknown-top-level-key", MINIMAL + "trian:\n  steps: 3\n",
     [("bad.yaml:3: trian: ", "unknown key (did you mean 'train'?); expected one of: name, kind,")]),
    ("unknown-nested-key", MINIMAL + "train:\n  steps: 3\n  lrr: 0.1\n",
     [("bad.yaml:5: train.lrr: ", "unknown key (did you mean 'lr'?); expected one of: steps, batch_size")]),
    ("wrong-type", MINIMAL + "train:\n  steps: many\n",
     [("bad.yaml:4: train.steps: ", "Input should be a valid integer, unable to parse string as an integer (got 'many')")]),
    ("negative-size", MINIMAL + "world:\n  num_people: -3\n",
     [("bad.yaml:4: world.num_people: ", "Input should be greater than or equal to 3 (got -3)")]),
    ("missing-name", "# a comment first\nkind: memorization\nseed: 1\n",
     [("bad.yaml:2: name: ", "required field is missing")]),
    ("missing-kind", "name: s\n", [("bad.yaml:1: kind: ", "required field is missing; expected one of: memorization, unlearning")]),
    ("unknown-kind", "name: s\nkind: memorise\n",
     [("bad.yaml:2: kind: ", "unknown kind 'memorise'; expected one of: memorization, unlearning")]),
    ("splits-leave-no-retain", MINIMAL + "seed: 1\nworld:\n  num_people: 10\n  forget: 5\n  holdout: 5\n",
     [("bad.yaml:4: world: ", "forget (5) + holdout (5) must leave at least one retain person out of num_people (10)")]),
    ("heads-do-not-divide", MINIMAL + "model:\n  tiny:\n    hidden_size: 130\n    num_heads: 4\n",
     [("bad.yaml:4: model.tiny: ", "hidden_size (130) must be divisible by num_heads (4)")]),
    ("nested-not-a-mapping", MINIMAL + "world: 5\n", [("bad.yaml:3: world: ", "expected a mapping, got an integer")]),
    ("bad-literal", MINIMAL + "model:\n  dtype: int8\n",
     [("bad.yaml:4: model.dtype: ", "Input should be 'float32', 'bfloat16' or 'float16' (got 'int8')")]),
    ("bad-run-name", "name: ..\nkind: memorization\n",
     [("bad.yaml:1: name: ", "must name a run folder, not '.' or '..' (got '..')")]),
    ("duplicate-key", MINIMAL + "seed: 1\nseed: 2\n", [("bad.yaml:4: seed: ", "duplicate key; line 3 sets it too")]),
    # "Billion laughs": nine lines standing for 10^9 values; refused where the expansion passes the bound.
    ("yaml-alias-bomb", MINIMAL + "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 9)),
     [("bad.yaml:8: yaml: ", "aliases here expand to more than 200,000 values")]),
    ("yaml-alias-bomb-holding-itself", MINIMAL + "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 5)) + "me: &me [*me, *l4, *l4]\n",
     [("bad.yaml:8: yaml: ", "aliases here expand to more than 200,000 values")]),
    ("infinite-number", MINIMAL + "train:\n  lr: .inf\n", [("bad.yaml:4: train.lr: ", "finite number")]),
    ("unknown-backend", MINIMAL + "model:\n  backend: nope\n",
     [("bad.yaml:4: model.backend: ", "unknown backend 'nope'; known backends: hf, vllm")]),
    ("unknown-device", MINIMAL + "model:\n  device: tpu\n", [("bad.yaml:4: model.device: ", "should match pattern")]),
    ("local-model-path-missing", MINIMAL + "model:\n  name: ./weights/missing\n",
     [("bad.yaml:4: model.name: ", "no such file or directory: ")]),
    ("several-problems", "name: s\nkind: memorization\ntrain:\n  steps: 0\n  lr: -1\nworld:\n  canaries: x\nfoo: 1\n",
     [("bad.yaml:4: train.steps: ", "greater than or equal to 1"),
      ("bad.yaml:5: train.lr: ", "greater than 0"),
      ("bad.yaml:7: world.canaries: ", "valid integer"),
      ("bad.yaml:8: foo: ", "unknown key")]),
]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run the real CLI in tmp_path; returns (exit code, stdout lines, stderr lines)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    def invoke(*args: str):
        result = CliRunner().invoke(app, list(args), prog_name="memorylab")
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout.splitlines(), result.stderr.splitlines()

    return invoke


def assert_problems(lines: list[str], expected: list[tuple[str, str]]) -> None:
    assert len(lines) == len(expected), lines
    for line, (prefix, fragment) in zip(lines, expected):
        assert line.startswith(prefix), (line, prefix)
        assert fragment in line[len(prefix):], (line, fragment)


@pytest.mark.parametrize("text,expected", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_scenario(cli, text, expected):
    Path("bad.yaml").write_text(text)
    code, out, err = cli("validate", "bad.yaml")
    assert code == 2
    assert out == []
    assert_problems(err, expected)


def test_missing_file(cli):
    code, out, err = cli("validate", "nowhere.yaml")
    assert (code, out, err) == (2, [], ["nowhere.yaml:1: file: no such file"])


def test_valid_and_invalid_files_together(cli):
    Path("good.yaml").write_text(MINIMAL)
    Path("bad.yaml").write_text("name: s\nkind: x\n")
    code, out, err = cli("validate", "good.yaml", "bad.yaml")
    assert code == 2
    assert out == ["ok good.yaml (memorization)"]
    kinds = ", ".join(KINDS)
    assert err == [f"bad.yaml:2: kind: unknown kind 'x'; expected one of: {kinds}"]


def test_valid_files_and_folders_exit_0(cli):
    Path("scenarios").mkdir()
    Path("scenarios/a.yaml").write_text(MINIMAL)
    Path("scenarios/b.yml").write_text("name: b\nkind: memorization\n")
    Path("scenarios/notes.txt").write_text("not a scenario")
    code, out, err = cli("validate", "scenarios")
    assert (code, err) == (0, [])
    assert out == ["ok scenarios/a.yaml (memorization)", "ok scenarios/b.yml (memorization)"]


def test_usage_error_exits_2(cli):
    code, out, err = cli("validate")
    assert code == 2
    assert "Missing argument" in "\n".join(err)


def test_version(cli):
    assert cli("--version") == (0, [f"memorylab {__version__}"], [])


# --- run: the checks before anything starts --------------------------------------------------------------


@pytest.fixture
def no_runners(monkeypatch):
    """Make importing memorylab.runners fail, to prove these refusals come before it."""
    monkeypatch.setitem(sys.modules, "memorylab.runners", None)


@pytest.fixture
def fake_runner(monkeypatch):
    """A stand-in memorylab.runners whose run_scenario records its arguments or raises `calls.raise_`."""
    calls = types.SimpleNamespace(kwargs=None, raise_=None)

    def run_scenario(scenario, out_dir, context, **kwargs):
        calls.kwargs = dict(kwargs, scenario=scenario, out_dir=out_dir, address=context.address,
                            raw_config=context.raw_config, scenario_path=context.scenario_path)
        if calls.raise_:
            raise calls.raise_
        return {"name": scenario.name}

    monkeypatch.setitem(sys.modules, "memorylab.runners",
                        types.SimpleNamespace(run_scenario=run_scenario, RunContext=RunContext))
    return calls


def test_run_set_without_equals(cli, no_runners):
    Path("s.yaml").write_text(MINIMAL)
    code, _, err = cli("run", "s.yaml", "--set", "train.lr")
    assert (code, err) == (2, ["s.yaml:--set: train.lr: expected a.b.c=VALUE, got 'train.lr'"])


def test_run_set_invalid_value(cli, no_runners):
    Path("s.yaml").write_text(MINIMAL + "train:\n  lr: 0.1\n")
    code, _, err = cli("run", "s.yaml", "--set", "train.lr=-1", "--set", "train.steps=2")
    assert (code, err) == (2, ["s.yaml:--set: train.lr: Input should be greater than 0 (got -1)"])


def test_run_set_below_a_refused_mapping_is_blamed(cli, no_runners):
    Path("s.yaml").write_text(MINIMAL + "world:\n  num_people: 12\n")
    code, _, err = cli("run", "s.yaml", "--set", "world.forget=10")
    assert code == 2 and len(err) == 1 and err[0].startswith("s.yaml:--set: world: forget (10) + holdout"), err
    Path("s.yaml").write_text(MINIMAL + "world:\n  num_people: 12\n  forget: 10\n")  # the file's own mistake
    code, _, err = cli("run", "s.yaml", "--set", "world.seed=3")
    assert code == 2 and len(err) == 1 and err[0].startswith("s.yaml:3: world: forget (10) + holdout"), err


def test_run_set_through_a_non_mapping(cli, no_runners):
    Path("s.yaml").write_text(MINIMAL)
    code, _, err = cli("run", "s.yaml", "--set", "name.x=1")
    assert (code, err) == (2, ["s.yaml:--set: name.x: name is a string, not a mapping or a list, so it has no key 'x'"])


def test_run_refuses_a_non_empty_run_folder(cli, no_runners):
    Path("s.yaml").write_text(MINIMAL)
    Path("runs/s").mkdir(parents=True)
    Path("runs/s/report.json").write_text("{}")
    code, out, err = cli("run", "s.yaml")
    assert code == 2 and out == []
    assert len(err) == 1 and "runs/s" in err[0] and "--overwrite" in err[0]

    Path("elsewhere").mkdir()
    Path("elsewhere/x").write_text("")
    code, _, err = cli("run", "s.yaml", "--out", "elsewhere")
    assert code == 2 and len(err) == 1 and "elsewhere" in err[0]


def test_run_passes_everything_to_the_runner(cli, fake_runner, monkeypatch):
    Path("s.yaml").write_text(MINIMAL + "ray:\n  address: auto\n")
    Path("runs/s").mkdir(parents=True)  # empty: no --overwrite needed
    monkeypatch.setenv("RAY_ADDRESS", "ray://env:10001")
    code, out, err = cli("run", "s.yaml", "--set", "train.steps=2")
    assert (code, out, err) == (0, [str(Path("runs/s/report.json"))], [])
    kw = fake_runner.kwargs
    assert kw["scenario"].train.steps == 2
    assert kw["raw_config"] == {"name": "s", "kind": "memorization", "ray": {"address": "auto"}, "train": {"steps": 2}}
    assert (kw["out_dir"], kw["scenario_path"], kw["overwrite"]) == (Path("runs/s"), Path("s.yaml"), False)
    assert kw["address"] == "auto"  # the file beats the environment

    cli("run", "s.yaml", "--address", "ray://cli:10001", "--out", "o")
    assert (fake_runner.kwargs["address"], fake_runner.kwargs["out_dir"]) == ("ray://cli:10001", Path("o"))

    Path("t.yaml").write_text(MINIMAL)
    cli("run", "t.yaml", "--overwrite")
    assert fake_runner.kwargs["address"] == "ray://env:10001"
    assert fake_runner.kwargs["overwrite"] is True


def test_run_error_exits_1_and_interrupt_130(cli, fake_runner):
    Path("s.yaml").write_text(MINIMAL)
    fake_runner.raise_ = MemorylabError("the cluster at auto has no GPU; set resources.model.num_gpus: 0")
    assert cli("run", "s.yaml") == (1, [], ["error: the cluster at auto has no GPU; set resources.model.num_gpus: 0"])
    fake_runner.raise_ = KeyboardInterrupt()
    code, out, err = cli("run", "s.yaml")
    assert (code, out, len(err)) == (130, [], 1)


def test_run_bugs_propagate(cli, fake_runner):
    Path("s.yaml").write_text(MINIMAL)
    fake_runner.raise_ = ZeroDivisionError("a bug")
    with pytest.raises(ZeroDivisionError):
        cli("run", "s.yaml")


def test_real_process_prints_no_traceback(tmp_path):
    """The console entry point as a real process: problems on stderr, exit 2, no traceback."""
    (tmp_path / "bad.yaml").write_text(MINIMAL + "train:\n  steps: many\n")
    proc = subprocess.run(
        [sys.executable, "-m", "memorylab.cli", "validate", "bad.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "bad.yaml:4: train.steps: Input should be a valid integer, unable to parse string as an integer (got 'many')"
    ]
