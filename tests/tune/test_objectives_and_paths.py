"""Objectives read report figures by dotted path; swept paths are checked against the validated scenario."""

from __future__ import annotations

import math

import pytest

from memorylab.scenario import KINDS
from memorylab.tune.objectives import Expression, ExpressionError
from memorylab.tune.paths import field_problem, with_values

REPORT = {"models": {"target": {"knowmem_forget": 0.8, "zero": 0.0}, "grad-ascent": {"knowmem_forget": 0.2},
                     "m": {"ppl": None}}, "list": [1.5, 2.5]}


@pytest.mark.parametrize("text,value", [
    ("1 - models['grad-ascent'].knowmem_forget / models.target.knowmem_forget", 0.75),
    ("-models.target.knowmem_forget ** 2", -0.64),
    ("max(list[0], list[1]) + abs(-1)", 3.5),
    ("2 * 3", 6.0),
])
def test_expressions_read_figures(text, value):
    assert Expression(text).value(REPORT) == pytest.approx(value)


@pytest.mark.parametrize("text", ["models.nobody.x", "models.m.ppl", "1 / models.target.zero", "models.target"])
def test_a_figure_that_is_missing_null_or_undefined_gives_none(text):
    assert Expression(text).value(REPORT) is None


def test_paths_are_collected_for_checking():
    paths = Expression("1 - models['grad-ascent'].knowmem_forget / models.target.knowmem_forget").paths
    assert paths == [("models", "grad-ascent", "knowmem_forget"), ("models", "target", "knowmem_forget")]


@pytest.mark.parametrize("text", ["__import__('os')", "models.x if 1 else 2", "lambda: 1", "[1, 2]",
                                  "models.x < 1", "open('f').read()", "abs", "True + 1"])
def test_anything_but_arithmetic_on_figures_is_refused(text):
    with pytest.raises(ExpressionError):
        Expression(text)


@pytest.mark.parametrize("text, says", [("max(list[0])", "max takes at least 2 arguments"),
                                         ("min()", "min takes at least 2 arguments"),
                                         ("abs(list[0], list[1])", "abs takes exactly one argument"),
                                         ("abs()", "abs takes exactly one argument")])
def test_calls_with_the_wrong_number_of_arguments_are_refused(text, says):
    with pytest.raises(ExpressionError, match=says):
        Expression(text)


@pytest.mark.parametrize("text", ["(0 - list[0]) ** 0.5", "abs((0 - list[0]) ** 0.5)", "max((-2) ** 0.5, 1)"])
def test_a_negative_to_a_fractional_power_is_no_value(text):
    assert Expression(text).value(REPORT) is None


def test_overflow_is_no_value():
    assert Expression("10.0 ** 400").value({}) is None
    assert math.isnan(float("nan"))  # the trainable turns None into NaN for Tune


RAW = {"name": "u", "kind": "unlearning", "methods": [{"method": "npo", "lr": 1e-3}],
       "resources": {"model": {"num_cpus": 1}}}


def model():
    return KINDS["unlearning"].schema.model_validate(RAW)


@pytest.mark.parametrize("path", ["methods.0.lr", "methods.0.retain_weight", "world.forget", "train.lr",
                                  "resources.model.resources.my_accelerator", "seed"])
def test_fields_left_at_their_default_can_be_swept(path):
    assert field_problem(model(), path) is None


@pytest.mark.parametrize("path,says", [
    ("methods.0.betta", "did you mean 'beta'"), ("methods.1.lr", "is a list of 1"),
    ("seed.x", "is a value (int)"), ("nothing", "the scenario has no 'nothing'"),
])
def test_paths_naming_no_field_say_where_they_leave_the_scenario(path, says):
    assert says in field_problem(model(), path)


def test_with_values_sets_paths_in_a_copy():
    out = with_values(RAW, {"methods.0.lr": 5e-4, "train.steps": 10})
    assert out["methods"][0]["lr"] == 5e-4 and out["train"] == {"steps": 10}
    assert RAW["methods"][0]["lr"] == 1e-3 and "train" not in RAW
    assert KINDS["unlearning"].schema.model_validate(out).train.steps == 10
