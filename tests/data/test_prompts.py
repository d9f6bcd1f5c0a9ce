"""The one QA format: prompts, documents and few-shot prompts agree character for character."""

from memorylab.data import QA
from memorylab.data.prompts import fewshot_prompt, qa_document, qa_prompt, qa_text
from memorylab.data.selection import strided


def test_fewshot_prompt_exact():
    prompt = fewshot_prompt([("Capital of France?", "Paris"), ("2+2?", "4")], "Who wrote Emma?")
    assert prompt == (
        "Question: Capital of France?\nAnswer: Paris\n\n"
        "Question: 2+2?\nAnswer: 4\n\n"
        "Question: Who wrote Emma?\nAnswer:"
    )
    assert fewshot_prompt([], "Q?") == "Question: Q?\nAnswer:"


def test_a_document_is_its_prompt_then_the_answer_after_one_space():
    qa = QA("Where was Ada born?", "Lisbon", "p1", "birthplace")
    assert qa_document(qa) == qa_text(qa.question, qa.answer) == qa_prompt(qa.question) + " Lisbon"


def test_strided_is_even_and_bounded():
    assert strided(5, 400) == [0, 1, 2, 3, 4]
    assert strided(3600, 400) == list(range(0, 3600, 9))
    idx = strided(401, 400)
    assert len(idx) == len(set(idx)) == 400 and idx[0] == 0 and idx[-1] <= 400
