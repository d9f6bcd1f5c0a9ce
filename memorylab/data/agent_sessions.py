"""Sessions and probes for evaluating a memory agent: a synthetic set on the memorization world, and the
shape LoCoMo conversations are converted into.

The synthetic set talks to an agent whose generator was trained on the world's forget and retain people (it
"knows" them) about holdout people it never saw: each new person is introduced in a session of their own,
fact by fact, between small-talk turns; the last session changes some facts ("Actually, ..."). Probes are
tagged by the competency they test, as in MemoryAgentBench:
  accurate_retrieval        a fact told once, asked back;
  test_time_learning        a nickname taught in a session, then used in a question (nickname -> person -> fact);
  long_range_understanding  two facts of one person told far apart, asked together;
  conflict_resolution       a fact changed later: only the new value is right;
  knowledge_update_known    a changed fact about a person the generator was trained on: the told value must win
                            over the weights (context vs parametric memory, as in the knowledge-conflict papers).
Probes about known people (`competency="known"`) have no evidence in the sessions: they check that adaptive
retrieval leaves questions the model can answer from its weights alone. Never-told probes (`never_told`) ask
about people nobody mentioned and the world does not hold: the agent should abstain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from memorylab.data.reader import strangers
from memorylab.data.seeding import derive_seed, rng_for
from memorylab.data.templates import ATTRIBUTES, render_fact, render_question
from memorylab.data.world import World

COMPETENCIES = ("accurate_retrieval", "test_time_learning", "long_range_understanding", "conflict_resolution",
                "knowledge_update_known")
CHANGEABLE = ("occupation", "employer", "hobby")  # facts that plausibly change; a birthplace does not
FILLER = ("Hi there!", "Thanks, that is all for now.", "Good morning.", "Okay, talk to you later.",
          "Can you keep that in mind?", "Great, thank you.")
ALIAS_ADJECTIVES = ("quiet", "brave", "clever", "sleepy", "swift", "gentle", "merry", "stubborn")
ALIAS_NOUNS = ("falcon", "otter", "badger", "heron", "lynx", "walrus", "beetle", "marten")


@dataclass(frozen=True)
class Turn:
    id: str  # "S<session>:<index>" (LoCoMo: its dia_id)
    session: int
    role: str
    content: str
    date: Optional[str] = None


@dataclass(frozen=True)
class Probe:
    question: str
    answers: tuple[str, ...]  # every part must be found for an answer to count (one part for most probes)
    evidence: tuple[str, ...]  # turn ids that state what the answer needs
    competency: str
    person: str = ""
    category: str = ""  # the dataset's own tag (LoCoMo: its category name)
    unanswerable: bool = False  # nothing the agent was told answers it: the right answer is to abstain


@dataclass(frozen=True)
class AgentDataset:
    name: str
    sessions: list[list[Turn]]
    probes: list[Probe]
    stale_answers: dict[int, str] = field(default_factory=dict)  # probe index -> the value a conflict replaced

    @property
    def turns(self) -> list[Turn]:
        return [t for s in self.sessions for t in s]


def synthetic_sessions(world: World, new_people: int, known_people: int, facts_per_person: int, conflicts: int,
                       filler_turns: int, seed: int, updates_known: int = 0, never_told: int = 0) -> AgentDataset:
    rng = rng_for(seed, "agent-sessions")
    new = world.people_in("holdout")[:new_people]
    if len(new) < new_people:
        raise ValueError(f"synthetic.new_people ({new_people}) exceeds the world's holdout people ({len(new)})")
    known = world.people_in("retain")[:known_people]
    sessions: list[list[Turn]] = []
    probes: list[Probe] = []
    told: dict[tuple[str, str], str] = {}  # (person id, attribute) -> turn id
    aliases: dict[str, tuple[str, str]] = {}  # person id -> (alias, turn id)

    def session(lines: list[str]) -> list[Turn]:
        index = len(sessions) + 1
        turns = [Turn(f"S{index}:{i + 1}", index, "user", text) for i, text in enumerate(lines)]
        sessions.append(turns)
        return turns

    # Each new person: an intro session with the first half of their facts and their nickname, and a
    # follow-up session after all intros with the rest, so some facts of one person lie sessions apart.
    # One changeable fact each, so the last session has something to change for up to every new person.
    plan = []
    for person in new:
        changeable = rng.choice(CHANGEABLE)
        others = rng.sample([a for a in ATTRIBUTES if a != changeable], min(facts_per_person, len(ATTRIBUTES)) - 1)
        attributes = others + [changeable]
        rng.shuffle(attributes)
        plan.append((person, attributes))
    for k, (person, attributes) in enumerate(plan):
        alias = f"the {ALIAS_ADJECTIVES[k % len(ALIAS_ADJECTIVES)]} {ALIAS_NOUNS[(k * 3 + 1) % len(ALIAS_NOUNS)]}"
        first = attributes[: (len(attributes) + 1) // 2]
        lines = [rng.choice(FILLER) for _ in range(filler_turns // 2)]
        start = len(lines)
        lines += [render_fact(a, 0, person.name, person.attributes[a]) for a in first]
        lines.append(f"We call {person.name} {alias}.")
        lines += [rng.choice(FILLER) for _ in range(filler_turns - filler_turns // 2)]
        turns = session(lines)
        for j, a in enumerate(first):
            told[(person.id, a)] = turns[start + j].id
        aliases[person.id] = (alias, turns[start + len(first)].id)
    for person, attributes in plan:
        rest = attributes[(len(attributes) + 1) // 2:]
        if rest:
            turns = session([f"More about {person.name}: {render_fact(a, 0, person.name, person.attributes[a])}"
                             for a in rest])
            told.update({(person.id, a): t.id for a, t in zip(rest, turns)})

    changes = [(p, a) for p in new for a in CHANGEABLE if (p.id, a) in told][:conflicts]
    donors = world.people_in("retain")
    changed: dict[tuple[str, str], str] = {}  # (person id, attribute) -> the new value
    for i, (person, attribute) in enumerate(changes):
        # Another person's value: a realistic new value, and one the world never pairs with this person.
        changed[(person.id, attribute)] = next(d.attributes[attribute] for d in donors[i:] + donors
                                               if d.attributes[attribute] != person.attributes[attribute])
    # The first template of each CHANGEABLE attribute starts with the name: "Actually, <name> works for ...".
    change_turns = session([f"Actually, {render_fact(a, 0, p.name, changed[(p.id, a)])}" for p, a in changes])
    changed_turn = {(p.id, a): t.id for (p, a), t in zip(changes, change_turns)}
    if not changes:
        sessions.pop()

    # Known people told a changed fact: others than those asked from the weights (`known`).
    updated = world.people_in("retain")[known_people:known_people + updates_known]
    if len(updated) < updates_known:
        raise ValueError(f"synthetic.known_people + updates_known ({known_people + updates_known}) exceeds the "
                         f"world's retain people ({known_people + len(updated)})")
    updates = []
    for i, person in enumerate(updated):
        attribute = rng.choice(CHANGEABLE)
        value = next(d.attributes[attribute] for d in donors[i + 1:] + donors
                     if d.attributes[attribute] != person.attributes[attribute])
        updates.append((person, attribute, value))
    update_turns = session([f"Actually, {render_fact(a, 0, p.name, v)}" for p, a, v in updates]) if updates else []

    stale: dict[int, str] = {}
    for (person, attribute, value), turn in zip(updates, update_turns):
        stale[len(probes)] = person.attributes[attribute]
        probes.append(Probe(render_question(attribute, person.name), (value,), (turn.id,), "knowledge_update_known",
                            person.name))
    for person in new:
        person_facts = sorted(((a, told[(person.id, a)]) for a in ATTRIBUTES if (person.id, a) in told),
                              key=lambda f: tuple(int(x) for x in f[1][1:].split(":")))
        for a, turn_id in person_facts:
            question = render_question(a, person.name)
            if (person.id, a) in changed:
                stale[len(probes)] = person.attributes[a]
                probes.append(Probe(question, (changed[(person.id, a)],), (changed_turn[(person.id, a)],),
                                    "conflict_resolution", person.name))
            else:
                probes.append(Probe(question, (person.attributes[a],), (turn_id,), "accurate_retrieval", person.name))
        alias, alias_turn = aliases[person.id]
        a, turn_id = next(((a, t) for a, t in person_facts if (person.id, a) not in changed), person_facts[0])
        probes.append(Probe(render_question(a, alias), (person.attributes[a],), (alias_turn, turn_id),
                            "test_time_learning", person.name))
        steady = [(a, t) for a, t in person_facts if (person.id, a) not in changed]
        if len(steady) >= 2 and steady[0][1].split(":")[0] != steady[-1][1].split(":")[0]:
            (a1, t1), (a2, t2) = steady[0], steady[-1]
            second = render_question(a2, person.name)
            probes.append(Probe(f"{render_question(a1, person.name)} And {second[:1].lower()}{second[1:]}",
                                (person.attributes[a1], person.attributes[a2]), (t1, t2),
                                "long_range_understanding", person.name))
    for person in known:
        a = rng.choice(ATTRIBUTES)
        probes.append(Probe(render_question(a, person.name), (person.attributes[a],), (), "known", person.name))
    for person in strangers(world, never_told, derive_seed(seed, "never-told")):
        probes.append(Probe(render_question(rng.choice(ATTRIBUTES), person.name), (), (), "never_told", person.name,
                            unanswerable=True))
    return AgentDataset("synthetic", sessions, probes, stale)


# LoCoMo's categories by the competency each mostly tests (MemoryAgentBench groups LoCoMo-style QA the same
# way): finding one stated fact is accurate retrieval; combining facts across sessions or placing them in
# time is long-range understanding. The category itself stays on every probe as its tag.
LOCOMO_COMPETENCY = {"single-hop": "accurate_retrieval", "adversarial": "accurate_retrieval",
                     "multi-hop": "long_range_understanding", "temporal": "long_range_understanding",
                     "open-domain": "long_range_understanding"}


def locomo_sessions(conversation, questions: Optional[int] = None) -> AgentDataset:
    """One LoCoMo conversation as sessions of turns (each turn's memory text) and probes."""
    from memorylab.data.locomo import CATEGORIES, memory_text

    sessions: dict[int, list[Turn]] = {}
    for turn in conversation.turns:
        sessions.setdefault(turn.session, []).append(
            Turn(turn.dia_id, turn.session, "user", memory_text(turn), turn.session_date_time))
    probes = []
    for probe in conversation.probes[:questions]:
        category = CATEGORIES[probe.category]
        probes.append(Probe(probe.question, (str(probe.answer),), tuple(probe.evidence),
                            LOCOMO_COMPETENCY[category], category=category))
    return AgentDataset(f"locomo-{conversation.sample_id}", [sessions[k] for k in sorted(sessions)], probes)
