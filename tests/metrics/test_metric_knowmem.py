import pytest

from memorylab.metrics import clean_answer, knowmem


@pytest.mark.parametrize("generation, expected", [
    (" Paris\n\nQuestion: next?", "Paris"),
    (" Paris Question: next?", "Paris"),
    ("  Jane Austen  ", "Jane Austen"),
    ("Rome\nmore", "Rome"),
    ("", ""),
    ("\nlate answer", ""),
])
def test_clean_answer(generation, expected):
    assert clean_answer(generation) == expected


def test_knowmem_hand_case():
    # second pair: "the red fox jumped" vs "red fox": LCS 2, P = 2/4, R = 1, F1 = 2/3.
    got = knowmem([" Paris\nQuestion: foo", " the red fox jumped\n"], ["Paris", "red fox"])
    assert got == pytest.approx((1.0 + 2 / 3) / 2)


def test_knowmem_errors():
    with pytest.raises(ValueError, match="same length"):
        knowmem(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty"):
        knowmem([], [])
