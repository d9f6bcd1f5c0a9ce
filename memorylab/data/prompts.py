"""The QA prompt format every model here is trained, asked and measured in.

A question becomes "Question: ...\nAnswer:" and its answer follows after one space. Training documents,
KnowMem's few-shot prompts, TOFU examples, the truth ratio's contexts, the served agent's answer prompt and the
adaptive policies' probes all use this one format, so a model is asked exactly the way it learned. A served
agent's answer prompt puts the memories it retrieved before the question (`memory_prompt`), and its reader is
trained on exactly that prompt (data/reader.py).
"""

from __future__ import annotations

from typing import Any, Sequence

QA_PROMPT = "Question: {question}\nAnswer:"  # a question as a prompt: the answer follows after one space
QA_FORMAT = QA_PROMPT + " {answer}"  # the format of QA training documents and of few-shot examples


def qa_prompt(question: str) -> str:
    return QA_PROMPT.format(question=question)


def qa_text(question: str, answer: str) -> str:
    """A question and its answer as one text: a training document, or an example in a prompt."""
    return QA_FORMAT.format(question=question, answer=answer)


def qa_document(qa: Any) -> str:
    """A QA pair (anything with .question and .answer) as a training document, in exactly the format the
    few-shot KnowMem prompt uses."""
    return qa_text(qa.question, qa.answer)


def fewshot_prompt(shots: Sequence[tuple[str, str]], question: str) -> str:
    """Deterministic few-shot QA prompt; ends with "Answer:" so the model writes the answer."""
    return "".join(f"{qa_text(q, a)}\n\n" for q, a in shots) + qa_prompt(question)


def memory_prompt(memories: Sequence[str], question: str) -> str:
    """Memories one per line, a blank line, then the question (no memories: the plain QA prompt)."""
    return "".join(f"{m}\n" for m in memories) + ("\n" if memories else "") + qa_prompt(question)
