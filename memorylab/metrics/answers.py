"""Answer-level scores of a memory agent, as LoCoMo's evaluation computes them (snap-research/locomo,
task_eval/evaluation.py), so figures compare with published ones:

- normalisation: lower case, no commas or punctuation, no articles nor "and", single spaces;
- exact match: the same set of normalised words;
- F1: token F1 over Porter-stemmed normalised words; a multi-hop answer is scored per comma-separated part
  (each gold part's best F1 against the prediction's parts, averaged); for LoCoMo's open-domain questions only
  the gold answer's part before a ';' counts; an adversarial question (nothing in the conversation answers it)
  scores 1 when the prediction says so ("no information available", "not mentioned", or the agent's own
  abstention text).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from functools import lru_cache
from typing import Sequence

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the|and)\b")
NO_INFORMATION = ("no information available", "not mentioned")


def normalize_answer(text: str) -> str:
    text = text.replace(",", "").lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


@lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem import PorterStemmer

    return PorterStemmer()


def _stems(text: str) -> list[str]:
    stem = _stemmer().stem
    return [stem(word) for word in normalize_answer(text).split()]


def exact_match(prediction: str, gold: str) -> float:
    return float(set(normalize_answer(prediction).split()) == set(normalize_answer(gold).split()))


def token_f1(prediction: str, gold: str) -> float:
    predicted, wanted = _stems(prediction), _stems(gold)
    same = sum((Counter(predicted) & Counter(wanted)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(wanted)
    return 2 * precision * recall / (precision + recall)


def multi_part_f1(prediction: str, gold_parts: Sequence[str]) -> float:
    """Each gold part's best F1 against the prediction's comma-separated parts, averaged."""
    parts = [p.strip() for p in prediction.split(",")]
    return sum(max(token_f1(p, g) for p in parts) for g in gold_parts) / len(gold_parts)


def says_abstain(prediction: str, abstain: str) -> bool:
    """The prediction declines to answer: the agent's abstention text, or LoCoMo's phrases for it."""
    said = normalize_answer(prediction)
    return said == normalize_answer(abstain) or any(phrase in prediction.lower() for phrase in NO_INFORMATION)


def answer_scores(prediction: str, answers: Sequence[str], category: str = "", abstain: str = "unknown",
                  unanswerable: bool = False) -> dict[str, float]:
    """exact_match and f1 of one prediction. `answers`: the gold parts (all must be given); `category`: LoCoMo's
    category name when the probe has one; `unanswerable`: nothing the agent was told answers it."""
    if unanswerable or category == "adversarial":
        hit = float(says_abstain(prediction, abstain))
        return {"exact_match": hit, "f1": hit}
    if category == "open-domain":
        answers = [a.split(";")[0].strip() for a in answers]
    if len(answers) > 1 or category == "multi-hop":
        parts = [p.strip() for a in answers for p in a.split(",") if p.strip()] or list(answers)
        return {"exact_match": exact_match(prediction, ", ".join(parts)), "f1": multi_part_f1(prediction, parts)}
    return {"exact_match": exact_match(prediction, answers[0]), "f1": token_f1(prediction, answers[0])}
