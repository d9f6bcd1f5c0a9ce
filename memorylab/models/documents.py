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


@dataclass(frozen=True)
class MarkedText:
    """A plain text with its sensitive character spans [start, end) marked (a fact's value, a canary's secret):
    trained on like any text, but a span-scoped unlearning method puts its forget loss on those tokens alone."""

    text: str
    spans: tuple[tuple[int, int], ...]


Document = Union[str, Example, MarkedText]


class ExampleTokens(list):
    """The token ids of one Example (BOS, prompt, answer, EOS); the first `context` are not scored."""

    def __init__(self, ids: Sequence[int], context: int):
        super().__init__(ids)
        self.context = context


class MarkedTokens(list):
    """The token ids of a MarkedText (or of a row packed from some), with `sensitive`: per token, whether its
    characters overlap a marked span."""

    def __init__(self, ids: Sequence[int], sensitive: Sequence[bool]):
        super().__init__(ids)
        self.sensitive = list(sensitive)


def document_text(document: Document) -> str:
    """The text a document puts before the model (an Example's prompt and answer together)."""
    return document if isinstance(document, str) else document.text


def mark(text: str, values: Sequence[str]) -> MarkedText:
    """`text` with every occurrence of each of `values` marked sensitive."""
    spans = []
    for value in values:
        start = text.find(value) if value else -1
        while start >= 0:
            spans.append((start, start + len(value)))
            start = text.find(value, start + len(value))
    return MarkedText(text, tuple(sorted(spans)))


def context_length(row: Sequence[int]) -> int:
    """How many of a row's first tokens are context only: an example's prompt; none in a packed row."""
    return getattr(row, "context", 0)
