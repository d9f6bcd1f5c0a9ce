import pytest

from memorylab.metrics import split_prefix, verbmem


def test_split_prefix():
    assert split_prefix([1, 2, 3, 4, 5], 2) == ([1, 2], [3, 4, 5])
    assert split_prefix((7, 8), 1) == ([7], [8])


def test_split_prefix_errors():
    with pytest.raises(ValueError, match="not longer"):
        split_prefix([1, 2, 3], 3)
    with pytest.raises(ValueError, match="at least 1"):
        split_prefix([1, 2, 3], 0)


def test_verbmem_mean_rouge():
    got = verbmem(["the cat sat on the mat", "nothing shared"], ["the cat on the mat", "other words"])
    assert got == pytest.approx((10 / 11 + 0.0) / 2)


def test_verbmem_errors():
    with pytest.raises(ValueError):
        verbmem(["a"], [])
    with pytest.raises(ValueError):
        verbmem([], [])
