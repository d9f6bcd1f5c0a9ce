"""An LLM judge of a memory agent's answers, over any OpenAI-compatible server.

Published LoCoMo figures move by tens of points with the judge's prompt, so every answer is graded twice,
side by side: a lenient prompt (the same thing is meant, as mem0's evaluation grades) and a strict one (the
exact fact is stated). Both prompts are files beside this module (judge_prompts/), so a report's numbers can
be traced to the words that produced them. The judge reads the label on the last line of its reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from memorylab.errors import GeneratorUnavailable, MemorylabError
from memorylab.models.protocol import GenerationParams

PROMPTS = Path(__file__).parent / "judge_prompts"
STYLES = ("lenient", "strict")
_LABEL = re.compile(r"\b(CORRECT|WRONG)\b")
JUDGE_PARAMS = GenerationParams(max_new_tokens=64, temperature=0.0)


@lru_cache(maxsize=None)
def judge_prompt(style: str) -> str:
    """The prompt of one style, with {question}, {gold} and {answer} to fill."""
    return (PROMPTS / f"{style}.txt").read_text()


def read_label(reply: str) -> Optional[float]:
    """1.0 for CORRECT, 0.0 for WRONG (the last label the reply gives), None when it gives none."""
    labels = _LABEL.findall(reply.upper())
    return None if not labels else float(labels[-1] == "CORRECT")


@dataclass
class Judge:
    """`generator`: a TextGenerator that answers the judge's prompts (an OpenAIGenerator)."""

    generator: Any
    failures: int = 0
    last_failure: str = ""

    @classmethod
    def from_config(cls, config: Any) -> "Judge":
        """From a `judge:` block; checks once that the server answers and serves the model."""
        from memorylab.models.openai_generator import OpenAIGenerator

        generator = OpenAIGenerator.from_config(config)
        try:
            generator.check()
        except GeneratorUnavailable as e:
            raise MemorylabError(f"judge: {e}") from None
        return cls(generator)

    def grade(self, question: str, gold: str, answer: str) -> dict[str, Optional[float]]:
        """{"judge_lenient": 1/0, "judge_strict": 1/0}; None where the judge failed or gave no label (counted in
        `failures`, the run goes on)."""
        prompts = [judge_prompt(style).format(question=question, gold=gold, answer=answer) for style in STYLES]
        try:
            replies = self.generator.generate(prompts, JUDGE_PARAMS)
        except GeneratorUnavailable as e:
            self.failures += 1
            self.last_failure = str(e)
            return {f"judge_{style}": None for style in STYLES}
        labels = [read_label(reply) for reply in replies]
        if None in labels:
            self.failures += 1
            self.last_failure = f"a reply without CORRECT or WRONG: {replies[labels.index(None)][:80]!r}"
        return {f"judge_{style}": label for style, label in zip(STYLES, labels)}
