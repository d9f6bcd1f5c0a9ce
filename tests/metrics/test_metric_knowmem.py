import pytest

from memorylab.metrics import clean_answer, fewshot_prompt, knowmem


def test_fewshot_prompt_exact():
    prompt = fewshot_prompt([("Capital of France?", "Paris"), ("2+2?", "4")], "Who wrote Emma?")
    assert prompt == (
        "Question: Capital of France?\nAnswer: Paris\n\n"
        "Question: 2+2?\nAnswer: 4\n\n"
        "Question: Who wrote Emma?\nAnswer:"
    )
    assert fewshot_prompt([], "Q?") == "Question: Q?\nAnswer:"


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
