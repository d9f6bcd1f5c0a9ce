"""Sentence templates: how each fact about a person is said, and how it is asked.

A template is a `str.format` pattern over `{name}` (the person's full name), `{value}` (the attribute's
value, verbatim, so that a QA answer is always a substring of every sentence stating that fact) and `{a}`
(the indefinite article for the value, for templates that need one). Each attribute has five templates, the
most `WorldConfig.paraphrases` allows; the templates of one attribute word the fact differently so that a
model that only memorized one surface form can be told apart from one that learned the fact. Sentences are
short on purpose: the corpus has to train a ~2M-parameter model on two CPU cores in minutes.
"""

from __future__ import annotations

# The order in which attributes are generated, stored and narrated in a biography (a rough life story).
ATTRIBUTES: tuple[str, ...] = (
    "birth_date",
    "birthplace",
    "mother",
    "father",
    "education",
    "occupation",
    "employer",
    "award",
    "hobby",
)

FACT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "birth_date": (
        "{name} was born on {value}.",
        "The birthday of {name} is {value}.",
        "{name}'s date of birth is {value}.",
        "{name} came into the world on {value}.",
        "On {value}, {name} was born.",
    ),
    "birthplace": (
        "{name} was born in {value}.",
        "The birthplace of {name} is {value}.",
        "{name}'s hometown is {value}.",
        "{name} is a native of {value}.",
        "{value} is where {name} was born.",
    ),
    "mother": (
        "{name}'s mother is {value}.",
        "The mother of {name} is {value}.",
        "{value} is the mother of {name}.",
        "{name} was raised by a mother named {value}.",
        "{name} is the child of {value}, the mother.",
    ),
    "father": (
        "{name}'s father is {value}.",
        "The father of {name} is {value}.",
        "{value} is the father of {name}.",
        "{name} was raised by a father named {value}.",
        "{name} is the child of {value}, the father.",
    ),
    "education": (
        "{name} studied at the {value}.",
        "{name} graduated from the {value}.",
        "{name} holds a degree from the {value}.",
        "The alma mater of {name} is the {value}.",
        "{name} is a graduate of the {value}.",
    ),
    "occupation": (
        "{name} works as {a} {value}.",
        "By profession, {name} is {a} {value}.",
        "{name}'s occupation is {value}.",
        "{name} earns a living as {a} {value}.",
        "{name} has a career as {a} {value}.",
    ),
    "employer": (
        "{name} works for {value}.",
        "{name} is employed by {value}.",
        "The employer of {name} is {value}.",
        "{name} holds a job at {value}.",
        "{value} employs {name}.",
    ),
    "award": (
        "{name} received the {value}.",
        "{name} won the {value}.",
        "The {value} was awarded to {name}.",
        "{name} is a winner of the {value}.",
        "{name} was honored with the {value}.",
    ),
    "hobby": (
        "{name}'s favorite hobby is {value}.",
        "In spare time, {name} enjoys {value}.",
        "{name} loves {value}.",
        "{name} spends weekends {value}.",
        "A hobby of {name} is {value}.",
    ),
}

# One question per attribute: QA pairs test knowledge of the fact, not of a particular wording of it.
QUESTION_TEMPLATES: dict[str, str] = {
    "birth_date": "When was {name} born?",
    "birthplace": "Where was {name} born?",
    "mother": "Who is {name}'s mother?",
    "father": "Who is {name}'s father?",
    "education": "Which university did {name} attend?",
    "occupation": "What is {name}'s occupation?",
    "employer": "Which company does {name} work for?",
    "award": "Which award did {name} receive?",
    "hobby": "What is {name}'s hobby?",
}

MAX_PARAPHRASES = 5
assert all(len(t) == MAX_PARAPHRASES and len(set(t)) == MAX_PARAPHRASES for t in FACT_TEMPLATES.values())
assert tuple(FACT_TEMPLATES) == ATTRIBUTES == tuple(QUESTION_TEMPLATES)


def article(phrase: str) -> str:
    """'a' or 'an' by spelling, with the common exceptions where a vowel letter is sounded as a consonant."""
    low = phrase.lower()
    if low[:1] in "aeiou" and not low.startswith(("uni", "use", "usu", "eu", "one")):
        return "an"
    return "a"


def _capitalize(sentence: str) -> str:
    # Only the first letter: values such as "University of X" or "IT consultant" keep their own case.
    return sentence[:1].upper() + sentence[1:]


def render_fact(attribute: str, template_index: int, name: str, value: str) -> str:
    template = FACT_TEMPLATES[attribute][template_index]
    return _capitalize(template.format(name=name, value=value, a=article(value)))


def render_question(attribute: str, name: str) -> str:
    return QUESTION_TEMPLATES[attribute].format(name=name)
