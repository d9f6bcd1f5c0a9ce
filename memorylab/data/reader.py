"""Reader examples: the generator learns to answer from the memories /chat puts before a question.

Each example is exactly the prompt /chat builds (memories one per line, a blank line, the QA prompt) and the
answer a reader should give, about people who are not in the world, so no person an evaluation asks about is
ever seen in training: "strangers" with names and values drawn with another seed than the world's (and checked
against it), half of them invented letter by letter, so that the reader learns to copy a value it has never
seen, token by token, and not to recall one. The cases, as a served agent meets them:

  copy      the answer is among the memories, with distractors (other people's facts, often of the same
            attribute; the same person's other facts; a person of a similar name): copy the value
  alias     a nickname taught in one memory ("We call X the brave heron.") and the question asked by it
  override  a memory gives a person the generator knows a value its weights do not hold: the memory wins
  newer     two values of one attribute, the newer marked ("now", "used to"): the newer
  abstain   nothing among the memories answers: the abstention answer

A share of the facts comes in a frame, as people tell them ("More about X: ...", "Note: ..."), so that the
reader does not take a value from the frame's name or miss a fact for its preamble.

A prompt without memories (adaptive retrieval chose not to retrieve) is not a reader example: the reader head
(models/reader_head.py) leaves it to the generator, whose weights the reader stage does not change. Only
`override` (and `newer`, now and then) names world people (those the generator is trained on), with values no
world person holds for that attribute in `override`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

from memorylab.data.people import MONTHS, Person, generate_people
from memorylab.data.prompts import memory_prompt
from memorylab.data.seeding import derive_seed, rng_for
from memorylab.data.templates import ATTRIBUTES, FACT_TEMPLATES, article, render_fact, render_question
from memorylab.data.world import World

# Share of each case among the examples.
CASES: dict[str, float] = {"copy": 0.32, "alias": 0.2, "override": 0.14, "newer": 0.14, "abstain": 0.2}
# Attributes that change over a life: what "now" and "used to" are said of.
CHANGING = ("occupation", "employer", "hobby")
NOW = {"occupation": "{name} now works as {a} {value}.", "employer": "{name} now works for {value}.",
       "hobby": "{name} now enjoys {value}."}
ACTUALLY = "Actually, {fact}"  # how a session corrects a fact (data/agent_sessions.py)
USED_TO = {"occupation": "{name} used to work as {a} {value}.", "employer": "{name} used to work for {value}.",
           "hobby": "{name} used to enjoy {value}."}
ALIAS = "We call {name} {alias}."
# How people frame a fact they tell an agent, beside the bare sentence ("More about ..." is how a session of
# data/agent_sessions.py adds to what it said); a frame says nothing about which value is newer.
FRAMES = ("More about {name}: {fact}", "About {name}: {fact}", "Note: {fact}", "To remember: {fact}",
          "From our last chat: {fact}")
FRAMED = 0.3  # share of the facts told in a frame
# Nickname words no evaluation uses (data/agent_sessions.py has its own), so no asked nickname is trained.
ALIAS_ADJECTIVES = ("tall", "kind", "lucky", "silent", "bold", "calm", "wise", "eager", "proud", "shy",
                    "jolly", "nimble")
ALIAS_NOUNS = ("heron", "fox", "owl", "raven", "bison", "crane", "wolf", "hare", "seal", "moth", "newt", "elk")

_ONSETS = ("b", "br", "d", "dr", "f", "g", "k", "l", "m", "n", "p", "r", "s", "st", "t", "v", "z", "sh", "w")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "y")
_CODAS = ("", "", "", "n", "r", "l", "s", "x")


@dataclass(frozen=True)
class ReaderExample:
    """One example before rendering: what /chat would show, the memory that states the answer ("" when none
    does), and what the reader answers."""

    case: str
    memories: tuple[str, ...]
    question: str
    answer: str
    evidence: str = ""

    @property
    def prompt(self) -> str:
        return memory_prompt(self.memories, self.question)


def invented_word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables))


def invented_person(rng: random.Random, index: int) -> Person:
    """A person whose name and values are made up letter by letter: nothing a tokenizer trained on the world
    has a merge for, so answering means copying the value's pieces one by one."""
    def word(syllables: int = 2) -> str:
        return invented_word(rng, syllables).capitalize()

    def name() -> str:
        return f"{word()} {word(rng.randint(1, 2))}"

    values = {
        "birth_date": f"{MONTHS[rng.randrange(12)]} {rng.randint(1, 28)}, {rng.randint(1930, 1999)}",
        "birthplace": word() + rng.choice(("", "ville", "burg", " Falls", " Bay")),
        "mother": name(), "father": name(),
        "education": "University of " + word(),
        "occupation": invented_word(rng, 1) + rng.choice(("smith", " analyst", " keeper", "wright", " tuner")),
        "employer": f"{word()} {rng.choice(('Labs', 'Group', 'Works', 'Partners'))}",
        "award": f"{word()} {rng.choice(('Prize', 'Medal', 'Award'))}",
        "hobby": rng.choice(("playing the ", "collecting ", "carving ", "restoring ")) + invented_word(rng, 1),
    }
    return Person(id=f"x{index:05d}", name=name(), attributes=values)


def strangers(world: World, count: int, seed: int) -> list[Person]:
    """`count` people not in the world: half drawn like the world's people (another seed), half invented; none
    shares a name, a parent's name, or an attribute value with anyone in the world."""
    taken = {p.name for p in world.people} | {p.attributes[a] for p in world.people for a in ATTRIBUTES}
    drawn = generate_people(derive_seed(seed, "reader", "people"), count)
    rng = rng_for(seed, "reader", "invented")
    invented = [invented_person(rng, i) for i in range(count)]
    mixed = [p for pair in zip(drawn, invented) for p in pair]
    return [p for p in mixed if p.name not in taken and not taken & set(p.attributes.values())][:count]


class ExampleMaker:
    """Draws the examples of each case from one seeded stream."""

    def __init__(self, world: World, people: Sequence[Person], distractors: int, abstain: str, seed: int) -> None:
        self.rng = rng_for(seed, "reader", "examples")
        self.people = list(people)
        self.known = [p for p in world.people if world.split_of(p.id) != "holdout"]
        self.distractors = distractors
        self.abstain = abstain
        self.by_attribute = {a: [p.attributes[a] for p in self.people] for a in ATTRIBUTES}

    # -- the pieces ---------------------------------------------------------------------------------------
    def fact(self, person: Person, attribute: str, value: str | None = None, framed: bool = True) -> str:
        index = self.rng.randrange(len(FACT_TEMPLATES[attribute]))
        text = render_fact(attribute, index, person.name, person.attributes[attribute] if value is None else value)
        if framed and self.rng.random() < FRAMED:
            return self.rng.choice(FRAMES).format(name=person.name, fact=text)
        return text

    def other_value(self, attribute: str, *avoid: str) -> str:
        while True:
            value = self.rng.choice(self.by_attribute[attribute])
            if value not in avoid:
                return value

    def noise(self, person: Person, attribute: str, count: int) -> list[str]:
        """Distractors for a question about `person`'s `attribute`: none of them states it."""
        out = []
        for _ in range(count):
            kind = self.rng.random()
            if kind < 0.4:  # someone else, the same attribute: the hardest to tell apart
                other = self.rng.choice(self.people)
                if other.name != person.name:
                    out.append(self.fact(other, attribute))
            elif kind < 0.7:  # the same person, another attribute
                out.append(self.fact(person, self.rng.choice([a for a in ATTRIBUTES if a != attribute])))
            elif kind < 0.85:  # a similar name: the same first name, another person's value
                first = person.name.split()[0]
                namesake = Person("", f"{first} {self.rng.choice(self.people).name.split()[-1]}", person.attributes)
                if namesake.name != person.name:
                    out.append(self.fact(namesake, attribute, self.other_value(attribute, person.attributes[attribute])))
            else:
                other = self.rng.choice(self.people)
                out.append(self.fact(other, self.rng.choice(ATTRIBUTES)))
        return out

    def shuffled(self, *groups: Sequence[str]) -> tuple[str, ...]:
        memories = [m for g in groups for m in g]
        self.rng.shuffle(memories)
        return tuple(dict.fromkeys(memories))  # a memory is stored once

    def some_noise(self) -> int:
        # /chat shows its top_k memories whenever the store holds that many, so most prompts are full: half the
        # examples have every distractor, the rest any number.
        return self.distractors if self.rng.random() < 0.5 else self.rng.randint(0, self.distractors)

    # -- the cases ----------------------------------------------------------------------------------------
    def copy(self) -> ReaderExample:
        person, attribute = self.rng.choice(self.people), self.rng.choice(ATTRIBUTES)
        evidence = self.fact(person, attribute)
        memories = self.shuffled([evidence], self.noise(person, attribute, self.some_noise()))
        return ReaderExample("copy", memories, render_question(attribute, person.name), person.attributes[attribute],
                             evidence)

    def alias(self) -> ReaderExample:
        person, attribute = self.rng.choice(self.people), self.rng.choice(ATTRIBUTES)
        nickname = f"the {self.rng.choice(ALIAS_ADJECTIVES)} {self.rng.choice(ALIAS_NOUNS)}"
        evidence = self.fact(person, attribute)
        memories = self.shuffled([ALIAS.format(name=person.name, alias=nickname), evidence],
                                 self.noise(person, attribute, max(0, self.some_noise() - 1)))
        return ReaderExample("alias", memories, render_question(attribute, nickname), person.attributes[attribute],
                             evidence)

    def override(self) -> ReaderExample:
        person, attribute = self.rng.choice(self.known), self.rng.choice(ATTRIBUTES)
        # Half the new values are another known person's (a move to a place the world has), half new ones.
        pool = self.known if self.rng.random() < 0.5 else self.people
        value = next((v for v in (self.rng.choice(pool).attributes[attribute] for _ in range(20))
                      if v != person.attributes[attribute]), self.other_value(attribute, person.attributes[attribute]))
        evidence = self.fact(person, attribute, value)
        memories = self.shuffled([evidence], self.noise(person, attribute, self.some_noise()))
        return ReaderExample("override", memories, render_question(attribute, person.name), value, evidence)

    def newer(self) -> ReaderExample:
        person = self.rng.choice(self.people + self.known)
        attribute = self.rng.choice(CHANGING)
        old, new = person.attributes[attribute], self.other_value(attribute, person.attributes[attribute])
        mark = self.rng.random()
        if mark < 0.35:  # the new value marked ("now"), the old one plain
            old_fact, new_fact = self.fact(person, attribute, old), _say(NOW[attribute], person.name, new)
        elif mark < 0.7:  # the old value marked ("used to"), the new one plain
            old_fact, new_fact = _say(USED_TO[attribute], person.name, old), self.fact(person, attribute, new)
        else:  # a correction, as a session makes one ("Actually, ...")
            old_fact = self.fact(person, attribute, old)
            new_fact = ACTUALLY.format(fact=self.fact(person, attribute, new, framed=False))
        memories = self.shuffled([old_fact, new_fact], self.noise(person, attribute, max(0, self.some_noise() - 1)))
        return ReaderExample("newer", memories, render_question(attribute, person.name), new, new_fact)

    def abstain_example(self) -> ReaderExample:
        person, attribute = self.rng.choice(self.people), self.rng.choice(ATTRIBUTES)
        memories: tuple[str, ...] = ()
        while not memories:  # a distractor can come out as none (a namesake that is the person): draw again
            memories = self.shuffled(self.noise(person, attribute, self.some_noise() + 1))  # as many as a copy
        return ReaderExample("abstain", memories, render_question(attribute, person.name), self.abstain)

    def draw(self, count: int) -> list[ReaderExample]:
        makers: dict[str, Callable[[], ReaderExample]] = {
            "copy": self.copy, "alias": self.alias, "override": self.override, "newer": self.newer,
            "abstain": self.abstain_example}
        cases = list(CASES)
        return [makers[case]() for case in self.rng.choices(cases, weights=[CASES[c] for c in cases], k=count)]


def _say(template: str, name: str, value: str) -> str:
    text = template.format(name=name, value=value, a=article(value))
    return text[:1].upper() + text[1:]


def reader_examples(world: World, count: int, *, people: int = 400, distractors: int = 4, abstain: str = "unknown",
                    seed: int = 0) -> list[ReaderExample]:
    """`count` examples over `people` strangers (and the world's trained people in override and newer)."""
    maker = ExampleMaker(world, strangers(world, people, seed), distractors, abstain, seed)
    return maker.draw(count)
