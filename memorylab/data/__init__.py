"""The built-in synthetic corpus: fictitious people split by person (forget / retain / holdout), several
paraphrases of each fact, QA pairs, biographies, and random-passphrase canaries. Seeded and offline."""

from .canaries import Canary, word_list
from .people import Person
from .templates import ATTRIBUTES, FACT_TEMPLATES, QUESTION_TEMPLATES
from .world import QA, SPLITS, Fact, World, build_world

__all__ = [
    "ATTRIBUTES",
    "FACT_TEMPLATES",
    "QUESTION_TEMPLATES",
    "SPLITS",
    "QA",
    "Canary",
    "Fact",
    "Person",
    "World",
    "build_world",
    "word_list",
]
