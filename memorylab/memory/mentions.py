"""Who a question is about, read against the memories: the two checks that keep an agent from answering from
stale weights or missing a fact it was told under another name.

- `named_in`: the memories whose subject (a person the policy keyed them by, memorylab.memory.facts) the
  question names. Adaptive retrieval asks this before it answers from the weights alone: a question about a
  person the agent was told about is answered from memory even when the generator is confident, because what
  it was told is newer than what it was trained on (the knowledge-conflict case: context over parametric
  memory).
- `alias_queries`: a question that uses a nickname the memories define ("We call Ada Park the quiet falcon.")
  asked again with the person's name, so retrieval also finds the facts stored under the name.

Both match whole words, case-insensitively, and only keyed memories take part: a memory the policy could not
key names no one.
"""

from __future__ import annotations

import re
from typing import Sequence

from memorylab.memory.facts import parse_fact
from memorylab.memory.records import MemoryRecord

NICKNAME = "nickname"


def _mentioned(phrase: str, text: str) -> bool:
    return bool(phrase) and re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, re.IGNORECASE) is not None


def named_in(question: str, records: Sequence[MemoryRecord]) -> list[MemoryRecord]:
    """The records about a subject (or by a nickname) the question names, in their order."""
    return [r for r in records if r.subject and (_mentioned(r.subject, question) or
                                                  (r.attribute == NICKNAME and _mentioned(_nickname(r), question)))]


def alias_queries(question: str, records: Sequence[MemoryRecord]) -> list[tuple[MemoryRecord, str]]:
    """(the nickname's memory, the question with the nickname replaced by the subject's name) for each nickname
    memory among `records` that the question uses; a question naming the subject already needs none."""
    out = []
    for record in records:
        alias = _nickname(record) if record.attribute == NICKNAME and record.subject else ""
        if alias and _mentioned(alias, question) and not _mentioned(record.subject, question):
            pattern = rf"(?:\bthe\s+)?(?<!\w){re.escape(alias)}(?!\w)"
            out.append((record, re.sub(pattern, record.subject, question, count=1, flags=re.IGNORECASE)))
    return out


def _nickname(record: MemoryRecord) -> str:
    """The nickname a record defines (its parsed value, without a leading article)."""
    value = parse_fact(record.text).value or ""
    return re.sub(r"^(?:the|a|an)\s+", "", value.strip().rstrip("."), flags=re.IGNORECASE)
