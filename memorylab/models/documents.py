"""What a model trains on: plain texts, packed into rows, or prompted examples, each a row of its own.

A plain text (a biography, a fact, a news article) is trained on every token, and texts are packed whole into
rows, as pre-training (and MUSE, which chunks its corpora) does. An `Example` is a prompt and its answer, as
TOFU fine-tunes and unlearns on its QA pairs: the whole text is the model's input, but only the answer's tokens
are scored (the prompt's labels are ignored), and the example fills a row alone, so a per-sequence loss (NPO,
SimNPO) sees exactly one answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union


@dataclass(frozen=True)
class Example:
    prompt: str  # context: fed to the model, never scored
    answer: str  # appended to the prompt as is (give it its leading space)

    @property
    def text(self) -> str:
        return self.prompt + self.answer


Document = Union[str, Example]


class ExampleTokens(list):
    """The token ids of one Example (BOS, prompt, answer, EOS); the first `context` are not scored."""

    def __init__(self, ids: Sequence[int], context: int):
        super().__init__(ids)
        self.context = context


def document_text(document: Document) -> str:
    """The text a document puts before the model (an Example's prompt and answer together)."""
    return document.text if isinstance(document, Example) else document


def context_length(row: Sequence[int]) -> int:
    """How many of a row's first tokens are context only: an example's prompt; none in a packed row."""
    return getattr(row, "context", 0)
