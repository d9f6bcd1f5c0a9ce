import math

import pytest

from memorylab.metrics import exposure, exposure_upper_bound


def test_canary_best_and_worst():
    assert exposure(1.0, [2.0, 3.0, 4.0]) == pytest.approx(2.0)  # log2 4 - log2 1
    assert exposure(5.0, [2.0, 3.0, 4.0]) == pytest.approx(0.0)  # rank 4 of 4
    assert exposure(2.5, [2.0, 3.0, 4.0]) == pytest.approx(1.0)  # rank 2


def test_ties_count_half():
    # one tied candidate: rank = 1 + 0 + 1/2
    assert exposure(2.0, [2.0, 3.0, 4.0]) == pytest.approx(2.0 - math.log2(1.5))
    # two tied candidates, none lower: rank = 1 + 2/2 = 2
    assert exposure(1.0, [1.0, 1.0, 5.0]) == pytest.approx(1.0)


def test_upper_bound():
    assert exposure_upper_bound(3) == pytest.approx(2.0)
    assert exposure(0.0, [1.0] * 1023) == pytest.approx(exposure_upper_bound(1023)) == pytest.approx(10.0)


def test_errors():
    with pytest.raises(ValueError, match="empty"):
        exposure(1.0, [])
    with pytest.raises(ValueError, match="finite"):
        exposure(float("nan"), [1.0])
    with pytest.raises(ValueError, match="at least 1"):
        exposure_upper_bound(0)
