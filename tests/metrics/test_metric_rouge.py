import pytest

from memorylab.metrics import mean_rouge_l_f1, rouge_l_f1


def test_hand_computed_lcs_case():
    # LCS("the cat sat on the mat", "the cat on the mat") = 5 tokens; P = 5/6, R = 5/5.
    p, r = 5 / 6, 1.0
    assert rouge_l_f1("the cat sat on the mat", "the cat on the mat") == pytest.approx(2 * p * r / (p + r))
    assert rouge_l_f1("the cat sat on the mat", "the cat on the mat") == pytest.approx(10 / 11)


def test_second_hand_case_and_bounds():
    # LCS("a b c d", "a c e") = "a c": P = 2/4, R = 2/3, F1 = 4/7.
    assert rouge_l_f1("a b c d", "a c e") == pytest.approx(4 / 7)
    assert rouge_l_f1("same words here", "same words here") == 1.0
    assert rouge_l_f1("alpha beta", "gamma delta") == 0.0
    assert rouge_l_f1("", "reference") == 0.0


def test_default_tokenizer_ignores_case_and_punctuation():
    assert rouge_l_f1("The Cat, sat!", "the cat sat") == 1.0


def test_mean_is_unweighted_over_pairs():
    got = mean_rouge_l_f1(["the cat sat on the mat", "x y"], ["the cat on the mat", "x y"])
    assert got == pytest.approx((10 / 11 + 1.0) / 2)


def test_mean_errors():
    with pytest.raises(ValueError, match="same length"):
        mean_rouge_l_f1(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        mean_rouge_l_f1([], [])
    with pytest.raises(TypeError):
        rouge_l_f1(None, "a")
