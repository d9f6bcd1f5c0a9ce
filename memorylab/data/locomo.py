"""LoCoMo (Maharana et al. 2024, long conversational memory) as memorylab data: turns and QA probes.

The file lives outside the repository (../shared/data/locomo, see its README.md): a JSON list of
conversations, each with `conversation` {speaker_a, speaker_b, session_N: [turns], session_N_date_time}
and `qa` [{question, answer | adversarial_answer, evidence [dia_id...], category}]. Evidence dia_ids
name the turns that support an answer, so retrieval recall can be measured without any generator.

The whole file is validated when loaded, so a damaged file fails with one sentence naming the file and
the field, not deep in an evaluation run. The released data has a few malformed evidence entries
("D8:6; D9:17", "D:11:26", "D", and ids of turns that do not exist); they are repaired where the intent
is unambiguous and otherwise kept aside in `Probe.unresolved_evidence`, never silently counted as misses.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

from memorylab.data.shared import find_shared
from memorylab.errors import MemorylabError

PathLike = Union[str, os.PathLike]

DEV_FILE = "locomo5_dev.json"
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}

_SESSION_KEY = re.compile(r"^session_(\d+)$")
# "D11:26", and the typo "D:11:26" seen in the released file.
_DIA_ID = re.compile(r"^D:?(\d+):(\d+)$")


@dataclass(frozen=True)
class Turn:
    dia_id: str  # "D<session>:<turn>", unique within a conversation
    speaker: str
    text: str
    session: int  # the N of session_N
    session_date_time: str  # as written in the file, e.g. "1:56 pm on 8 May, 2023"
    image_caption: Optional[str] = None  # BLIP caption of a shared image: the words of the turn can be just "look!"

    @property
    def session_timestamp(self) -> Optional[float]:
        return session_timestamp(self.session_date_time)


def memory_text(turn: Turn) -> str:
    """A turn as one memory's text, as LoCoMo's own RAG baseline renders it: "<speaker>: <text>", plus
    "[shared <caption>]" when the turn shared an image."""
    text = f"{turn.speaker}: {turn.text}"
    return f"{text} [shared {turn.image_caption}]" if turn.image_caption else text


@dataclass(frozen=True)
class Probe:
    question: str
    answer: str  # the gold answer; for adversarial questions the `adversarial_answer` when there is no `answer`
    category: int  # 1..5, see CATEGORIES
    evidence: tuple[str, ...]  # dia_ids of turns of this conversation that support the answer
    unresolved_evidence: tuple[str, ...] = ()  # evidence entries naming no turn of this conversation
    adversarial_answer: Optional[str] = None

    @property
    def category_name(self) -> str:
        return CATEGORIES[self.category]


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    speaker_a: str
    speaker_b: str
    turns: tuple[Turn, ...]  # in session order, then turn order
    probes: tuple[Probe, ...]


def session_timestamp(date_time: str) -> Optional[float]:
    """Unix seconds (read as UTC) of a session date like "1:56 pm on 8 May, 2023"; None if not in that form."""
    try:
        parsed = datetime.strptime(date_time.strip(), "%I:%M %p on %d %B, %Y")
    except ValueError:
        return None
    return parsed.replace(tzinfo=timezone.utc).timestamp()


def default_locomo_path() -> Path:
    """$MEMORYLAB_SHARED_DATA/locomo/locomo5_dev.json if it exists, else <repo>/../shared/data/locomo/..."""
    repo_root = Path(__file__).resolve().parents[2]  # memorylab/data/locomo.py -> repository root
    return find_shared(f"locomo/{DEV_FILE}", repo_root=repo_root, folder=False, what="LoCoMo file")


def _need(obj: dict, key: str, kind: type, where: str) -> Any:
    if key not in obj:
        raise MemorylabError(f"{where}: missing field '{key}'.")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MemorylabError(f"{where}: field '{key}' must be {kind.__name__}, got {type(value).__name__}.")
    return value


def _turns(conv: dict, where: str) -> list[Turn]:
    sessions = sorted((int(m.group(1)), key) for key in conv if (m := _SESSION_KEY.match(key)))
    if not sessions:
        raise MemorylabError(f"{where}: no 'session_N' field (a conversation needs at least one session).")
    turns, seen = [], set()
    for number, key in sessions:
        at = f"{where}.{key}"
        date = _need(conv, f"{key}_date_time", str, where)
        for t, raw in enumerate(_need(conv, key, list, where)):
            here = f"{at}[{t}]"
            if not isinstance(raw, dict):
                raise MemorylabError(f"{here}: expected a JSON object, got {type(raw).__name__}.")
            dia_id = _need(raw, "dia_id", str, here)
            if dia_id in seen:
                raise MemorylabError(f"{here}: field 'dia_id' {dia_id!r} repeats an earlier turn.")
            seen.add(dia_id)
            caption = raw.get("blip_caption")
            turns.append(Turn(dia_id, _need(raw, "speaker", str, here), _need(raw, "text", str, here),
                              number, date, caption if isinstance(caption, str) and caption else None))
    return turns


def _evidence(raw: list, turn_ids: set[str], where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    found: list[str] = []
    unresolved: list[str] = []
    for entry in raw:
        if not isinstance(entry, str):
            raise MemorylabError(f"{where}: field 'evidence' must hold strings, got {type(entry).__name__}.")
        # "D8:6; D9:17" is two ids in one string; "D:11:26" is "D11:26" with a stray colon.
        for part in filter(None, (p.strip() for p in re.split(r"[;,\s]+", entry))):
            m = _DIA_ID.match(part)
            dia_id = f"D{int(m.group(1))}:{int(m.group(2))}" if m else part
            target = found if dia_id in turn_ids else unresolved
            if dia_id not in target:
                target.append(dia_id)
    return tuple(found), tuple(unresolved)


def _probe(raw: object, turn_ids: set[str], where: str) -> Probe:
    if not isinstance(raw, dict):
        raise MemorylabError(f"{where}: expected a JSON object, got {type(raw).__name__}.")
    question = _need(raw, "question", str, where)
    category = _need(raw, "category", int, where)
    if category not in CATEGORIES:
        raise MemorylabError(f"{where}: field 'category' must be one of 1..5, got {category}.")
    adversarial = raw.get("adversarial_answer")
    answer = raw.get("answer", adversarial)
    if answer is None:
        raise MemorylabError(f"{where}: missing field 'answer' (or 'adversarial_answer').")
    if not isinstance(answer, (str, int, float)) or isinstance(answer, bool):
        raise MemorylabError(f"{where}: field 'answer' must be a string or number, got {type(answer).__name__}.")
    evidence, unresolved = _evidence(_need(raw, "evidence", list, where), turn_ids, where)
    # Some answers are bare years (2022): a string keeps every answer comparable as text.
    return Probe(question, str(answer), category, evidence, unresolved,
                 str(adversarial) if adversarial is not None else None)


def _conversation(item: object, where: str) -> Conversation:
    if not isinstance(item, dict):
        raise MemorylabError(f"{where}: expected a JSON object, got {type(item).__name__}.")
    sample_id = _need(item, "sample_id", str, where)
    where = f"{where} ({sample_id})"
    conv = _need(item, "conversation", dict, where)
    at = f"{where}.conversation"
    speaker_a, speaker_b = _need(conv, "speaker_a", str, at), _need(conv, "speaker_b", str, at)
    turns = _turns(conv, at)
    turn_ids = {t.dia_id for t in turns}
    qa = _need(item, "qa", list, where)
    probes = [_probe(raw, turn_ids, f"{where}.qa[{i}]") for i, raw in enumerate(qa)]
    return Conversation(sample_id, speaker_a, speaker_b, tuple(turns), tuple(probes))


def load_locomo(path: Optional[PathLike] = None) -> list[Conversation]:
    """Every conversation of a LoCoMo file (default: the shared locomo5_dev.json), in file order."""
    path = Path(path) if path is not None else default_locomo_path()
    if not path.is_file():
        raise MemorylabError(f"LoCoMo file {path} does not exist.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MemorylabError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}).") from None
    except UnicodeDecodeError:
        raise MemorylabError(f"{path}: not UTF-8 text, so not a LoCoMo JSON file.") from None
    if not isinstance(data, list):
        raise MemorylabError(f"{path}: expected a JSON list of conversations, got {type(data).__name__}.")
    if not data:
        raise MemorylabError(f"{path}: holds no conversation.")
    conversations = [_conversation(item, f"{path}[{i}]") for i, item in enumerate(data)]
    ids = [c.sample_id for c in conversations]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise MemorylabError(f"{path}: field 'sample_id' {dup!r} names two conversations.")
    return conversations
