"""The memory policy: each fact of a conversation becomes ADD, UPDATE, DELETE or NOOP on the store.

Choices, and why:
- Facts come from `user` messages only (the policy's fact_roles): an assistant that echoes "Got it, Jo works
  for Acme" would double every fact, and an assistant's guesses would become memories. A message without a
  role is a user message (mem0 reads a bare string that way); system messages never carry facts.
- The deterministic policy (always available, and what decides whenever the LLM path cannot):
    fact with a (subject, attribute) key and a live memory with that key: same value -> NOOP, another value
        -> UPDATE that memory (its history keeps the old text). Values, not cosines, decide here: "lives in
        Bern" and "lives in Berlin" embed above any duplicate threshold yet are a change;
    otherwise the most similar memory at or above `duplicate_threshold` -> NOOP, unless both have keys and the
        keys differ (a fact about another person or attribute is never a duplicate);
    otherwise ADD.
    retraction: with a key, every memory of that key (whose text holds the value, when one was named); with
        "everything about X", every memory whose subject is X; else the most similar memory at or above
        `retraction_threshold` that shares a content word with it besides the subject's name (see
        _shares_content for why cosine alone deletes the wrong memory). A retraction that matches nothing
        changes nothing and reports nothing (logged).
- Facts are applied one after the other, each seeing the writes before it, so "Jo works for A. Actually, Jo
  works for B." in one call is ADD then UPDATE. Texts are embedded once per call, before deciding.
- `infer=True` with a generator: the LLM sees the `candidates` memories most similar to each new fact (union,
  short ids m0, m1, ...) and the facts (f0, f1, ...), and answers a JSON list of {event, id?, text?, fact?}
  ("fact" names the fact an op is for; optional). The whole answer is validated (pydantic, ids among the
  shown ones, an id updated or deleted at most once); if it fails, the deterministic policy decides every
  fact. A fact no valid op covers (by its "fact" field, or by an op text that is the fact's near-duplicate)
  goes through the deterministic policy too: no fact is ever dropped silently.
- A message's `timestamp`, when present, is kept as metadata["timestamp"] of the memories it yields, so
  temporal questions ("when did Jo move?") can be answered; created_at stays the write time, which orders
  `list` and is what durability is about.
- Writes of one (tenant, agent) are serialized here (decide-then-write must not interleave: two concurrent
  calls would both ADD the same fact); different agents proceed in parallel.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Literal, Optional, Sequence, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, field_validator, model_validator

from memorylab.errors import GeneratorRefused, GeneratorUnavailable, TooManyFacts
from memorylab.memory.facts import Candidate, Fact, Retraction, extract, normalized_value, parse_fact
from memorylab.memory.keyed_locks import KeyedLocks
from memorylab.memory.records import Event, MemoryRecord
from memorylab.memory.store import MemoryNotFound, MemoryStore
from memorylab.memory.store_rows import check_metadata
from memorylab.schema.memory_agent import PolicySettings

log = logging.getLogger(__name__)

LLM_MAX_NEW_TOKENS = 512
COVER_THRESHOLD = 0.85  # an op text at least this similar to a fact is taken to be that fact's op
COSINE_EPS = 1e-6  # float32 rounding: an identical text's cosine may read 0.99999994, still "at" 1.0


@dataclass(frozen=True)
class OpResult:
    id: str
    memory: str
    event: Event
    previous_memory: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "memory": self.memory, "event": self.event}
        if self.previous_memory is not None:
            out["previous_memory"] = self.previous_memory
        return out


class LLMOp(BaseModel):
    """One operation as the LLM writes it; extra fields are ignored, a wrong shape fails validation."""

    model_config = ConfigDict(extra="ignore")
    event: Literal["ADD", "UPDATE", "DELETE", "NOOP"]
    id: Optional[str] = None
    text: Optional[str] = None
    fact: Optional[Union[int, str]] = None

    @field_validator("event", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _complete(self) -> "LLMOp":
        if self.event in ("ADD", "UPDATE") and not (self.text and self.text.strip()):
            raise ValueError(f"{self.event} needs a non-empty text")
        if self.event != "ADD" and not self.id:
            raise ValueError(f"{self.event} needs the id of a shown memory")
        return self


_OPS = TypeAdapter(list[LLMOp])


class MemoryWriter:
    def __init__(self, store: MemoryStore, embedder: Any, config: PolicySettings = PolicySettings(),
                 generator: Any = None) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config
        self.generator = generator
        self._locks = KeyedLocks()  # one agent's facts are decided one request at a time

    def add_messages(self, tenant: str, agent: str, messages: Sequence[dict], *, infer: bool = False,
                     metadata: Optional[dict] = None, source: str = "api") -> list[OpResult]:
        items = self._candidates(messages, metadata or {})
        if not items:
            return []
        vectors = self.embedder.embed([_search_text(c) for c, _ in items])
        # One commit for the request's facts: all stored or none, even if the process dies halfway.
        with self._locks.hold((tenant, agent)), self.store.one_commit(tenant, agent):
            results: list[OpResult] = []
            todo = list(range(len(items)))
            path = "deterministic policy (infer=false)"
            if infer and self.generator is None:
                path = "deterministic policy (infer=true but no generator)"
            elif infer:
                decided = self._llm(tenant, agent, items, vectors, source, metadata or {})
                if decided is None:
                    path = "deterministic policy (the LLM's answer was not valid)"
                else:
                    results, todo = decided
                    path = f"LLM ({len(items) - len(todo)} facts), deterministic policy ({len(todo)} it left out)"
            log.info("add_messages tenant=%r agent=%r: %d candidates decided by %s", tenant, agent, len(items), path)
            for i in todo:
                try:
                    results += self._decide(tenant, agent, items[i][0], vectors[i], items[i][1], source)
                except MemoryNotFound:
                    # The memory it chose was deleted meanwhile through the store (an HTTP DELETE bypasses
                    # this writer's lock): decide again on what is there now.
                    results += self._decide(tenant, agent, items[i][0], vectors[i], items[i][1], source)
        return results

    def check(self, messages: Sequence[dict], metadata: Optional[dict] = None) -> int:
        """The number of facts an add of `messages` would decide, or the error the add would raise for them
        (too many facts, bad metadata): how an add queued for later is refused now."""
        return len(self._candidates(messages, metadata or {}))

    # -- messages -> candidates ------------------------------------------------------------------------------
    def _candidates(self, messages: Sequence[dict], metadata: dict) -> list[tuple[Candidate, dict]]:
        if isinstance(messages, (str, dict)):
            raise ValueError("messages must be a list of {role, content} dicts")
        out = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                raise ValueError(f"messages[{i}] must be a dict with role and content, got {type(m).__name__}")
            content, role = m.get("content"), m.get("role", "user")
            if not isinstance(content, str):
                raise ValueError(f"messages[{i}].content must be a string, got {type(content).__name__}")
            if role not in self.config.fact_roles:
                continue
            meta = dict(metadata)
            if m.get("timestamp") is not None:
                meta["timestamp"] = m["timestamp"]
            check_metadata(meta)  # before any fact of the call is written, not at the first bad one
            out += [(c, meta) for c in extract(content)]
            # Checked as they are counted: one request's facts are embedded, matched and written one by one
            # under its agent's lock, so their number bounds the work a single request can make.
            if len(out) > self.config.max_facts_per_add:
                raise TooManyFacts(f"more than {self.config.max_facts_per_add} facts in one request (each "
                                   f"sentence is one); send them in several, or raise "
                                   f"memory.policy.max_facts_per_add")
        return out

    # -- the deterministic policy --------------------------------------------------------------------------
    def _decide(self, tenant: str, agent: str, item: Candidate, vector: np.ndarray, metadata: dict,
                source: str) -> list[OpResult]:
        if isinstance(item, Retraction):
            return self._retract(tenant, agent, item, vector, source)
        if item.key:
            same = self._keyed(tenant, agent, item.subject, item.attribute)
            if same:
                old = max(same, key=lambda r: r.updated_at)  # the current value, if several slipped in
                if _same_value(old, item):
                    return [OpResult(old.id, old.text, "NOOP")]
                return [self._update(tenant, agent, old, item.text, vector, source, metadata)]
        for record, score in self.store.dense_search(tenant, agent, vector, 1):
            differ = item.key and record.subject and record.attribute and (record.subject, record.attribute) != item.key
            if score >= self.config.duplicate_threshold - COSINE_EPS and not differ:
                return [OpResult(record.id, record.text, "NOOP")]
        return [self._add(tenant, agent, item.text, vector, source, metadata)]

    def _retract(self, tenant: str, agent: str, item: Retraction, vector: np.ndarray, source: str) -> list[OpResult]:
        if item.everything and item.subject:
            targets = [r for r in self.store.records(tenant, agent) if _same_subject(r.subject, item.subject)]
        elif item.subject and item.attribute:
            targets = self._keyed(tenant, agent, item.subject, item.attribute)
            if item.value:
                targets = [r for r in targets if _holds_value(r.text, item.value)]
        else:
            hits = self.store.dense_search(tenant, agent, vector, 1)
            targets = [r for r, score in hits
                       if score >= self.config.retraction_threshold and _shares_content(item, r.text)]
        if not targets:
            log.info("retraction %r matched no memory of agent %r", item.text, agent)
        out = []
        for r in targets:
            old = self.store.delete(tenant, agent, r.id, source=source)
            out.append(OpResult(old.id, old.text, "DELETE"))
        return out

    def _keyed(self, tenant: str, agent: str, subject: str, attribute: str) -> list[MemoryRecord]:
        # Subjects compare without case ("jo doe" is Jo Doe); an agent's memories are few enough to scan.
        return [r for r in self.store.records(tenant, agent)
                if r.attribute == attribute and _same_subject(r.subject, subject)]

    # -- writes ----------------------------------------------------------------------------------------------
    def _add(self, tenant: str, agent: str, text: str, vector: np.ndarray, source: str, metadata: dict) -> OpResult:
        fact = parse_fact(text)
        now = time.time()
        record = self.store.add(MemoryRecord(id="", tenant=tenant, agent=agent, text=text, created_at=now,
                                             updated_at=now, source=source, subject=fact.subject,
                                             attribute=fact.attribute, metadata=dict(metadata)), vector)
        return OpResult(record.id, record.text, "ADD")

    def _update(self, tenant: str, agent: str, old: MemoryRecord, text: str, vector: np.ndarray, source: str,
                metadata: dict) -> OpResult:
        fact = parse_fact(text)  # the new text may name the key differently (LLM rewrites): keep the old if not
        _, new = self.store.update(tenant, agent, old.id, text, vector, source=source, subject=fact.subject,
                                   attribute=fact.attribute, metadata={**old.metadata, **metadata})
        return OpResult(new.id, new.text, "UPDATE", previous_memory=old.text)

    # -- the LLM path ----------------------------------------------------------------------------------------
    def _llm(self, tenant: str, agent: str, items: list[tuple[Candidate, dict]], vectors: np.ndarray,
             source: str, metadata: dict) -> Optional[tuple[list[OpResult], list[int]]]:
        """(results, indices of the facts it left to the deterministic policy), or None when its answer is
        unusable (no ops applied then)."""
        shown: dict[str, MemoryRecord] = {}
        for v in vectors:
            for record, _ in self.store.dense_search(tenant, agent, v, self.config.candidates):
                shown.setdefault(record.id, record)
        short = {f"m{i}": r for i, r in enumerate(shown.values())}
        prompt = build_prompt(list(short.items()), [c.text for c, _ in items])
        try:
            from memorylab.models.protocol import GenerationParams

            answer = self.generator.generate([prompt], GenerationParams(max_new_tokens=LLM_MAX_NEW_TOKENS))[0]
        except GeneratorRefused:
            log.warning("the memory LLM's server refused the prompt; the deterministic policy decides", exc_info=True)
            return None
        except GeneratorUnavailable:
            raise  # a server that is down is the client's to know (a 502/503/504), not a write done otherwise
        except Exception:
            log.warning("the memory LLM failed to generate; the deterministic policy decides", exc_info=True)
            return None
        ops = parse_ops(answer, set(short), len(items))
        if ops is None:
            return None
        # What each op is about, to tell which facts it covers: its text, or the memory it deletes or keeps.
        about = [op.text.strip() if op.text else short[op.id].text for op in ops]
        op_vectors = self.embedder.embed(about)
        covered: set[int] = set()
        results: list[OpResult] = []
        for op, op_vector in zip(ops, op_vectors):
            fact = _fact_index(op.fact, len(items))
            if fact is None:
                fact = self._covered_fact(op, op_vector, items, vectors)
            meta = items[fact][1] if fact is not None else metadata  # the fact's message timestamp, if known
            result = self._apply_llm_op(tenant, agent, op, short, op_vector, source, meta)
            if result is not None:
                results.append(result)
                if fact is not None:  # an op that could not be applied leaves its fact to the policy
                    covered.add(fact)
        return results, [i for i in range(len(items)) if i not in covered]

    def _covered_fact(self, op: LLMOp, op_vector: np.ndarray, items: list[tuple[Candidate, dict]],
                      vectors: np.ndarray) -> Optional[int]:
        """The fact an op without a "fact" field is for: a DELETE answers the retraction most similar to the
        memory it deletes; any other op the fact its text (or kept memory) near-duplicates. None if unsure:
        the deterministic policy then decides that fact too, which at worst reports one more NOOP."""
        retraction = op.event == "DELETE"
        threshold = self.config.retraction_threshold if retraction else COVER_THRESHOLD
        eligible = [i for i, (c, _) in enumerate(items) if isinstance(c, Retraction) == retraction]
        if not eligible:
            return None
        sims = vectors[eligible] @ op_vector
        best = int(np.argmax(sims))
        return eligible[best] if sims[best] >= threshold else None

    def _apply_llm_op(self, tenant: str, agent: str, op: LLMOp, short: dict[str, MemoryRecord],
                      vector: Optional[np.ndarray], source: str, metadata: dict) -> Optional[OpResult]:
        if op.event == "ADD":
            return self._add(tenant, agent, op.text.strip(), vector, source, metadata)
        record = self.store.get(tenant, agent, short[op.id].id)
        try:
            if record is None:
                raise MemoryNotFound(short[op.id].id)
            if op.event == "UPDATE":
                return self._update(tenant, agent, record, op.text.strip(), vector, source, metadata)
            if op.event == "DELETE":
                old = self.store.delete(tenant, agent, record.id, source=source)
                return OpResult(old.id, old.text, "DELETE")
            return OpResult(record.id, record.text, "NOOP")
        except MemoryNotFound:  # deleted meanwhile through the store itself: nothing left to change
            log.info("memory %r named by the LLM was deleted before its %s", short[op.id].id, op.event)
            return None


def build_prompt(memories: list[tuple[str, MemoryRecord]], facts: list[str]) -> str:
    shown = "\n".join(f"{sid}: {r.text}" for sid, r in memories) or "(none)"
    new = "\n".join(f"f{i}: {text}" for i, text in enumerate(facts))
    return (
        "You keep the long-term memory of an assistant. Decide how each new fact changes the memory.\n"
        "Existing memories:\n" f"{shown}\n\n"
        "New facts:\n" f"{new}\n\n"
        "For each new fact give one operation:\n"
        '- ADD: new information. {"event": "ADD", "text": <memory to store>, "fact": "f<i>"}\n'
        '- UPDATE: replaces an existing memory.\n'
        '  {"event": "UPDATE", "id": "m<j>", "text": <new memory>, "fact": "f<i>"}\n'
        '- DELETE: the fact says an existing memory is no longer true.\n'
        '  {"event": "DELETE", "id": "m<j>", "fact": "f<i>"}\n'
        '- NOOP: already known. {"event": "NOOP", "id": "m<j>", "fact": "f<i>"}\n'
        "Use only ids from the list above. Answer with the JSON list of operations and nothing else.\n"
        "JSON:"
    )


def parse_ops(answer: str, shown_ids: set[str], n_facts: int) -> Optional[list[LLMOp]]:
    """The LLM's operations, or None (logged) when its answer is not a valid list of them."""
    start, end = answer.find("["), answer.rfind("]")
    if start < 0 or end <= start:
        log.info("memory LLM answer holds no JSON list: %.200r", answer)
        return None
    try:
        data = json.loads(answer[start: end + 1])
        ops = _OPS.validate_python(data)
    except (json.JSONDecodeError, ValidationError) as e:
        log.info("memory LLM answer is not a valid list of operations: %s", str(e).splitlines()[0])
        return None
    changed: set[str] = set()
    for op in ops:
        if op.id is not None and op.event != "ADD" and op.id not in shown_ids:
            log.info("memory LLM answer names memory %r, which was not shown to it", op.id)
            return None
        if op.event in ("UPDATE", "DELETE"):
            if op.id in changed:
                log.info("memory LLM answer changes memory %r twice", op.id)
                return None
            changed.add(op.id)
        if op.fact is not None and _fact_index(op.fact, n_facts) is None:
            log.info("memory LLM answer names fact %r, which does not exist", op.fact)
            return None
    return ops


def _fact_index(fact: Union[int, str, None], n: int) -> Optional[int]:
    if fact is None:
        return None
    m = re.fullmatch(r"f?(\d+)", str(fact).strip())
    return int(m.group(1)) if m and int(m.group(1)) < n else None


def _search_text(item: Candidate) -> str:
    return item.target if isinstance(item, Retraction) else item.text


_STOPWORDS = frozenset("the a an and or of to in on at for is are was were be been has have had that this with as by "
                       "it its my i me you your he she his her they their we our not no longer anymore does do did "
                       "now actually about from forget".split())


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.casefold()) if w not in _STOPWORDS}


def _shares_content(item: Retraction, text: str) -> bool:
    """Whether a memory shares a word with what a key-less retraction names, beyond the subject's name.
    Cosine alone is not enough: a shared name carries half of MiniLM's similarity, so "forget that Jo owns a
    yacht" scores 0.60 against "Jo lives in Oslo", above the default retraction_threshold of 0.5."""
    named = _content_words(item.target) - _content_words(item.subject or "")
    return bool(named & _content_words(text))


def _same_subject(a: Optional[str], b: Optional[str]) -> bool:
    return a is not None and b is not None and a.casefold() == b.casefold()


def _holds_value(text: str, value: str) -> bool:
    """Whether a stored memory states `value` (a retraction's "no longer lives in Rome"): its parsed value equal
    to it ("Rome" does not retract "Romeoville", nor "York" "New York"), or for a text we cannot parse (an
    LLM's), the value as whole words, which is looser ("York" is in "... New York"); a value with no words in
    it ("???") names nothing."""
    wanted = normalized_value(value)
    if not wanted:
        return False
    stored = parse_fact(text).value
    if stored is not None:
        return normalized_value(stored) == wanted
    return re.search(rf"(?<!\w){re.escape(wanted)}(?!\w)", normalized_value(text)) is not None


def _same_value(record: MemoryRecord, fact: Fact) -> bool:
    old = parse_fact(record.text)
    if old.attribute == fact.attribute and old.value is not None:
        return normalized_value(old.value) == normalized_value(fact.value)
    return normalized_value(record.text) == normalized_value(fact.text)  # a text we cannot parse (an LLM's)
