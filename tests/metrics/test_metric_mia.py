import numpy as np
import pytest

from memorylab.metrics import loss_score, mia_auc, min_k_plus_plus_score, min_k_score, zlib_score

LP = np.array([-1.0, -2.0, -3.0, -4.0, -5.0])


def test_loss_score_is_mean_logprob():
    assert loss_score(np.array([-1.0, -2.0, -3.0])) == pytest.approx(-2.0)
    assert loss_score([-0.5]) == pytest.approx(-0.5)


def test_min_k_hand_cases():
    assert min_k_score(LP, k=0.4) == pytest.approx(np.mean([-4.0, -5.0]))
    assert min_k_score(LP[::-1].copy(), k=0.4) == pytest.approx(-4.5)  # order does not matter
    assert min_k_score(LP, k=0.5) == pytest.approx(np.mean([-4.0, -5.0]))  # int(2.5) = 2, as the reference code
    assert min_k_score(LP, k=0.01) == pytest.approx(-5.0)  # at least one token
    assert min_k_score(LP, k=1.0) == pytest.approx(-3.0)
    # 0.7 * 10 is 7.000000000000001 in floats: 7 tokens; 0.29 * 100 is 28.999999999999996: 29, not 28.
    assert min_k_score(-np.arange(1.0, 11.0), k=0.7) == pytest.approx(np.mean(-np.arange(4.0, 11.0)))
    assert min_k_score(-np.arange(1.0, 101.0), k=0.29) == pytest.approx(np.mean(-np.arange(72.0, 101.0)))


def test_min_k_plus_plus_hand_case():
    lp = np.array([-1.0, -2.0, -3.0, -4.0])
    mu = np.array([-1.5, -1.0, -2.0, -2.0])
    var = np.array([0.25, 1.0, 4.0, 1.0])
    # z = [0.5/0.5, -1/1, -1/2, -2/1] = [1, -1, -0.5, -2]
    assert min_k_plus_plus_score(lp, mu, var, k=0.5) == pytest.approx(-1.5)
    assert min_k_plus_plus_score(lp, mu, var, k=0.25) == pytest.approx(-2.0)
    assert min_k_plus_plus_score(lp, mu, var, k=1.0) == pytest.approx(-0.625)


def test_min_k_plus_plus_zero_variance_is_finite():
    # One-hot next-token distribution and the argmax token observed: z = 0, not NaN.
    assert min_k_plus_plus_score([0.0], [0.0], [0.0], k=1.0) == 0.0


def test_zlib_score_known_string():
    assert len(__import__("zlib").compress(b"hello")) == 13
    assert zlib_score(np.array([-1.0, -3.0]), "hello") == pytest.approx(-2.0 / 13)


def test_zlib_score_discounts_repetitive_text():
    # Same model likelihood, but repetitive text compresses well: it is less evidence of membership.
    lp = np.full(10, -1.0)
    assert zlib_score(lp, "ab" * 50) < zlib_score(lp, "".join(map(chr, range(33, 133))))


def test_mia_auc_cases():
    assert mia_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert mia_auc([0.1, 0.2], [0.9, 0.8]) == 0.0
    assert mia_auc([0.5, 0.5], [0.5, 0.5]) == 0.5
    # pairs: 0.8>0.6, 0.8>0.2, 0.4<0.6, 0.4>0.2 -> 3/4
    assert mia_auc([0.8, 0.4], [0.6, 0.2]) == pytest.approx(0.75)
    # a tie counts half: (0.5 + 1) / 2
    assert mia_auc([1.0], [1.0, 0.0]) == pytest.approx(0.75)


def test_higher_means_member_end_to_end():
    members = [np.array([-0.1, -0.2, -0.3]), np.array([-0.2, -0.1, -0.4])]
    nonmembers = [np.array([-2.0, -3.0, -6.0]), np.array([-1.5, -4.0, -2.5])]
    for score in (loss_score, min_k_score):
        assert mia_auc([score(x) for x in members], [score(x) for x in nonmembers]) == 1.0


@pytest.mark.parametrize("call, match", [
    (lambda: loss_score(np.array([])), "empty"),
    (lambda: min_k_score([], k=0.2), "empty"),
    (lambda: min_k_score([[-1.0]], k=0.2), "1-D"),
    (lambda: min_k_score([np.nan], k=0.2), "NaN"),
    (lambda: min_k_score([-np.inf], k=0.2), "infinite"),
    (lambda: min_k_score(LP, k=0.0), "fraction"),
    (lambda: min_k_score(LP, k=1.5), "fraction"),
    (lambda: min_k_plus_plus_score(LP, LP[:2], LP[:2]), "same shape"),
    (lambda: min_k_plus_plus_score(LP, LP, -np.ones(5)), "non-negative"),
    (lambda: zlib_score(np.array([]), "x"), "empty"),
    (lambda: zlib_score(LP, ""), "non-empty"),
    (lambda: mia_auc([], [0.1]), "at least one"),
    (lambda: mia_auc([0.1], [np.nan]), "finite"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
