"""Fictitious people: Faker names and places plus a few hand-written pools, drawn from one seeded stream.

Every value of an attribute is kept unique across the world wherever the pool allows it, because a metric
can only credit a model with remembering a fact if the answer could not have come from someone else's
record. For the same reason the parents get full names of their own rather than the child's surname: a
shared surname would let a model score on "Who is X's father?" without having memorized anything.

People are generated one after another from a single stream, so the first k people of a world with n > k
people are the same as those of a world with k people: growing a world never rewrites its existing people.
Dates are drawn by hand (Faker's `date_of_birth` depends on today's date) and formatted with our own month
names (`strftime("%B")` depends on the process locale).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from faker import Faker

from .seeding import derive_seed
from .templates import ATTRIBUTES

LOCALE = "en_US"

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

# Gerund phrases, so every hobby template ("spends weekends {value}", "enjoys {value}") reads correctly.
HOBBIES = (
    "birdwatching", "rock climbing", "knitting", "beekeeping", "sailing", "playing the cello",
    "collecting stamps", "baking sourdough bread", "restoring old clocks", "growing orchids", "fly fishing",
    "writing haiku", "building model ships", "playing chess", "ice skating", "kayaking", "throwing pottery",
    "painting watercolors", "cross-country skiing", "stargazing", "foraging for mushrooms", "playing the banjo",
    "solving crossword puzzles", "juggling", "fencing", "practicing archery", "carving wood", "brewing cider",
    "keeping chickens", "playing the harp", "scuba diving", "folding origami", "making candles", "tap dancing",
    "collecting old maps", "restoring motorcycles", "playing the bagpipes", "trail running", "rowing",
    "exploring caves", "quilting", "binding books", "blowing glass", "playing the accordion", "surfing",
    "weaving rugs", "sketching cathedrals", "repairing bicycles", "growing bonsai trees", "breeding goldfish",
    "playing bridge", "ballroom dancing", "writing sea shanties", "training falcons", "learning Icelandic",
    "making cheese", "playing the oboe", "restoring pianos", "building birdhouses", "snowshoeing",
    "collecting seashells", "metal detecting", "whittling spoons", "drawing comics", "painting miniatures",
    "flying kites", "pressing flowers", "tuning vintage radios",
)  # fmt: skip

# Award names are composed (20 x 20 x 4 = 1600 distinct names) rather than taken from a list of real ones.
AWARD_ADJECTIVES = (
    "Golden", "Silver", "Bronze", "Crimson", "Azure", "Emerald", "Ivory", "Copper", "Scarlet", "Northern",
    "Southern", "Eastern", "Western", "Royal", "Grand", "Bright", "Iron", "Crystal", "Amber", "Jade",
)  # fmt: skip
AWARD_EMBLEMS = (
    "Quill", "Compass", "Lantern", "Anchor", "Laurel", "Beacon", "Falcon", "Key", "Star", "Oak",
    "Harp", "Torch", "Crown", "Feather", "Arrow", "Shield", "Sparrow", "Bell", "Prism", "Helm",
)  # fmt: skip
AWARD_KINDS = ("Award", "Prize", "Medal", "Trophy")

# Bounded retries: past this many collisions a pool is treated as exhausted and a duplicate is accepted,
# so a very large world degrades to some shared values instead of looping forever.
_MAX_TRIES = 200


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    attributes: dict[str, str]  # insertion-ordered as templates.ATTRIBUTES


def _unique(draw: Callable[[], str], used: set[str]) -> str:
    """Draw until the value is new; `used` is only tested for membership, never iterated (order-free)."""
    value = draw()
    for _ in range(_MAX_TRIES):
        if value not in used:
            break
        value = draw()
    used.add(value)
    return value


def _occupation(fake: Faker) -> str:
    # Faker's jobs include inverted forms ("Engineer, civil") and alternatives ("x/y"); keep the plain ones
    # and lower-case them so they read naturally mid-sentence, sparing acronyms ("IT consultant").
    for _ in range(_MAX_TRIES):
        job = fake.job()
        if not any(c in job for c in ",()/"):
            break
    return " ".join(w if (w.isupper() and len(w) > 1) else w.lower() for w in job.split())


def _employer(fake: Faker) -> str:
    # "Smith, Jones and Lee" would put commas inside a fact; keep the single-clause names.
    for _ in range(_MAX_TRIES):
        company = fake.company()
        if "," not in company:
            return company
    return company.replace(",", "")


def _birth_date(rng: random.Random) -> str:
    # Days 1..28 are valid in every month, which keeps the draw uniform without calendar arithmetic.
    return f"{MONTHS[rng.randrange(12)]} {rng.randint(1, 28)}, {rng.randint(1930, 1999)}"


class _Cycle:
    """A finite pool in seeded order: unique until exhausted, then reused in a fresh seeded order."""

    def __init__(self, pool: tuple[str, ...], rng: random.Random):
        self._pool, self._rng, self._queue = pool, rng, []

    def __call__(self) -> str:
        if not self._queue:
            self._queue = list(self._pool)
            self._rng.shuffle(self._queue)
        return self._queue.pop()


def generate_people(seed: int, n: int) -> list[Person]:
    """`n` people with ids p000, p001, ... and unique full names (also distinct from every parent's name)."""
    fake = Faker(LOCALE)
    fake.seed_instance(derive_seed(seed, "people", "faker"))
    rng = random.Random(derive_seed(seed, "people", "rng"))
    hobbies = _Cycle(HOBBIES, random.Random(derive_seed(seed, "people", "hobbies")))

    names: set[str] = set()  # people and parents share one namespace, so no name answers two questions
    cities: set[str] = set()  # birthplaces and university towns too: "born in X" never reads as "studied in X"
    used: dict[str, set[str]] = {a: set() for a in ATTRIBUTES}
    width = max(3, len(str(n - 1)))

    people = []
    for i in range(n):
        name = _unique(lambda: f"{fake.first_name()} {fake.last_name()}", names)
        values = {
            "birth_date": _unique(lambda: _birth_date(rng), used["birth_date"]),
            "birthplace": _unique(fake.city, cities),
            "mother": _unique(lambda: f"{fake.first_name_female()} {fake.last_name()}", names),
            "father": _unique(lambda: f"{fake.first_name_male()} {fake.last_name()}", names),
            "education": "University of " + _unique(fake.city, cities),
            "occupation": _unique(lambda: _occupation(fake), used["occupation"]),
            "employer": _unique(lambda: _employer(fake), used["employer"]),
            "award": _unique(
                lambda: f"{rng.choice(AWARD_ADJECTIVES)} {rng.choice(AWARD_EMBLEMS)} {rng.choice(AWARD_KINDS)}",
                used["award"],
            ),
            "hobby": hobbies(),
        }
        people.append(Person(id=f"p{i:0{width}d}", name=name, attributes={a: values[a] for a in ATTRIBUTES}))
    return people
