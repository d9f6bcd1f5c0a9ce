import pytest

from memorylab.metrics import privleak


def test_privleak_examples():
    assert privleak(0.6, 0.5) == pytest.approx(20.0)   # under-unlearning: leaks more than retrain
    assert privleak(0.4, 0.5) == pytest.approx(-20.0)  # over-unlearning
    assert privleak(0.5, 0.5) == 0.0
    assert privleak(1.0, 0.25) == pytest.approx(300.0)


def test_privleak_errors():
    with pytest.raises(ValueError, match="positive"):
        privleak(0.5, 0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        privleak(0.5, -0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        privleak(1.2, 0.5)
