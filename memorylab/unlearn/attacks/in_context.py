"""In-context attack: each forget question preceded by a few-shot block of *other* forget people's true facts,
the whole prompt by a jailbreak-style line ("Sure, here is the answer:"); each VerbMem prefix preceded by that
line and other forget people's passages. Unlearning that other people's facts in the prompt undo shows here.
The ceiling is the target asked the same way.

The line opens the prompt rather than the answer: a model trained only on "Question: ...\nAnswer: <value>" (the
tiny ones here) answers nothing after "Answer: Sure, here is the answer:", the target included, which would
leave no forgetting to measure a recovery against. A chat model's scenario can put its own words there.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import Field

from memorylab.unlearn.attacks.attack import AttackBench, AttackOutcome, AttackSettings, AttackSubject


class InContext(AttackSettings):
    attack: Literal["in_context"] = "in_context"
    changes = "prompts"
    shots: int = Field(3, ge=1, description="other forget people's facts (and passages) before each prompt")
    prefix: str = Field("Sure, here is the answer:", description="the line every prompt starts with ('' for none)")

    def rewrite(self, data: Any, lm: Any = None, new_tokens: int = 0) -> Any:
        """The evaluation data asked this way: the prefix line, then few-shot examples from the forget people
        themselves (never the person asked, never the attribute asked: the shots give facts, not the answer), or
        up to `shots` other passages (their prefix and true continuation) before each VerbMem prefix, as many as
        fit `lm`'s context with `new_tokens` to generate (all of them without an lm)."""
        line = f"{self.prefix}\n\n" if self.prefix else ""
        pairs = data.verbatim
        verbatim = []
        for i, (prompt, truth) in enumerate(pairs):
            block = ""
            for k in range(1, min(self.shots, len(pairs) - 1) + 1):
                p, t = pairs[(i + k) % len(pairs)]
                longer = block + f"{p}{t}\n\n"
                if lm is not None and lm.count_tokens([line + longer + prompt])[0] + 1 + new_tokens > lm.max_length:
                    break
                block = longer
            verbatim.append((line + block + prompt, truth))
        return dataclasses.replace(data, fewshot_pool=list(data.qa_forget), verbatim=verbatim, knowmem_prefix=line)

    def fitting_shots(self, data: Any, lm: Any, new_tokens: int) -> int:
        """The most few-shot examples (up to `shots`) with which every KnowMem prompt fits `lm`'s context with
        `new_tokens` to generate (TOFU's long answers fill a tiny model's 256 tokens with a few)."""
        from memorylab.data.prompts import fewshot_prompt
        from memorylab.evaluation import fewshot_shots

        line = f"{self.prefix}\n\n" if self.prefix else ""
        for k in range(self.shots, 0, -1):
            prompts = [line + fewshot_prompt(fewshot_shots(data.qa_forget, q, k), q.question) for q in data.qa_forget]
            if max(lm.count_tokens(prompts), default=0) + 1 + new_tokens <= lm.max_length:
                return k
        return 0

    def run(self, subject: AttackSubject, bench: AttackBench) -> dict[str, AttackOutcome]:
        lm = subject.lm()
        shots = self.fitting_shots(bench.data.eval_data(lm, bench.eval, None), lm, bench.eval.knowmem_max_new_tokens)
        asked = AttackBench(bench.data, bench.eval.model_copy(update={"knowmem_shots": shots}), bench.seed)
        rewrite = lambda data: self.rewrite(data, lm, asked.eval.verbmem_max_new_tokens)  # noqa: E731
        return {self.attack: AttackOutcome(after=asked.measure(lm, rewrite=rewrite))}
