import pytest

from memorylab.metrics import privleak


def test_privleak_examples():
    # Arguments are AUCs with the forget set labelled 1; PrivLeak has MUSE's sign (MUSE labels it 0).
    assert privleak(0.6, 0.5) == pytest.approx(-20.0)  # under-unlearning: leaks more than retrain
    assert privleak(0.4, 0.5) == pytest.approx(20.0)   # over-unlearning
    assert privleak(0.5, 0.5) == 0.0
    assert privleak(1.0, 0.25) == pytest.approx(-100.0)  # MUSE's AUCs 0 vs 0.75: a target that remembers it all
    assert privleak(0.998, 0.5) == pytest.approx(-99.6)  # MUSE reports its News target at -99.8 so
    assert privleak(0.0, 0.8) == pytest.approx(400.0)  # MUSE's AUCs 1.0 vs 0.2


def test_privleak_errors():
    with pytest.raises(ValueError, match="below 1"):
        privleak(0.5, 1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        privleak(0.5, -0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        privleak(1.2, 0.5)
