"""LR schedules: values at the phase boundaries, the shape of each phase, and the arm dispatch."""

from __future__ import annotations

import pytest

from memorylab.continual.schedules import arm_schedule, constant, cosine, infinite, lr_curve
from memorylab.schema.continual import ArmConfig


def test_cosine_warms_up_then_decays_to_min_at_the_last_step():
    lr = cosine(steps=100, max_lr=1.0, warmup_steps=10, min_lr=0.1)
    assert lr(0) == pytest.approx(0.1) and lr(9) == pytest.approx(1.0)  # linear: 1/10 ... 10/10
    assert lr(4) == pytest.approx(0.5)
    assert lr(10) == pytest.approx(1.0)
    assert lr(99) == pytest.approx(0.1)  # the last step runs at min_lr
    assert lr(54) == pytest.approx(0.55, abs=0.01)  # half-way through the decay: the mean of max and min
    decay = [lr(s) for s in range(10, 100)]
    assert all(b <= a for a, b in zip(decay, decay[1:]))


def test_cosine_without_warmup_starts_at_max():
    lr = cosine(steps=5, max_lr=2.0)
    assert [round(lr(s), 6) for s in range(5)] == [2.0, round(1 + 0.5 ** 0.5, 6), 1.0, round(1 - 0.5 ** 0.5, 6), 0.0]


def test_infinite_has_cooldown_constant_and_anneal_phases():
    lr = infinite(steps=110, max_lr=1.0, warmup_steps=10, min_lr=0.0, cooldown=0.3, constant_ratio=0.5, anneal=0.2)
    assert lr(9) == pytest.approx(1.0) and lr(10) == pytest.approx(1.0)  # cool-down starts at max
    cool = [lr(s) for s in range(10, 40)]
    assert all(b < a for a, b in zip(cool, cool[1:])) and cool[-1] > 0.5
    assert {lr(s) for s in range(40, 90)} == {0.5}  # constant: 1 - 0.3 - 0.2 of the 100 post-warm-up steps
    anneal = [lr(s) for s in range(90, 110)]
    steps_down = {round(a - b, 9) for a, b in zip(anneal, anneal[1:])}
    assert steps_down == {0.025} and lr(89) - lr(90) == pytest.approx(0.025)  # linear, 20 steps from 0.5
    assert lr(109) == pytest.approx(0.0)


def test_infinite_rejects_fractions_over_one():
    with pytest.raises(ValueError, match="cooldown .* anneal .* at most 1"):
        infinite(steps=10, max_lr=1.0, cooldown=0.6, anneal=0.5)


def test_constant_is_flat_after_warmup():
    lr = constant(steps=20, max_lr=0.3, warmup_steps=3)
    assert [lr(s) for s in range(5)] == pytest.approx([0.1, 0.2, 0.3, 0.3, 0.3])


def test_arm_schedule_dispatches_on_the_arm():
    arm = ArmConfig(name="a", max_lr=1e-3, warmup_steps=2, schedule="infinite", min_lr=1e-4)
    curve = lr_curve(arm, 50)
    assert len(curve) == 50 and curve[1] == pytest.approx(1e-3) and curve[-1] == pytest.approx(1e-4)
    assert arm_schedule(ArmConfig(name="b", max_lr=5e-4, schedule="constant"), 10)(7) == 5e-4


def test_infinite_phases_fit_the_span_and_an_anneal_reaches_min_lr():
    # 3 post-warm-up steps: cool-down 1, anneal 2 (rounded apart, 2 + 2 overlapped and skipped the constant).
    lr = infinite(8, 1.0, warmup_steps=5, min_lr=0.1, cooldown=0.5, constant_ratio=0.5, anneal=0.5)
    assert [round(lr(s), 6) for s in range(5, 8)] == [1.0, 0.3, 0.1]
    short = infinite(4, 1.0, warmup_steps=2, min_lr=0.1, anneal=0.2)  # 0.2 x 2 steps rounds to 0: still 1
    assert short(3) == pytest.approx(0.1)
