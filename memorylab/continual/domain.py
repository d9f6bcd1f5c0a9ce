"""Shifted text domains: the same kind of facts, said in another register than the world's biographies.

Continual pre-training meets data that differs from what the model saw both in *what* it says (new people)
and in *how* (the register). The world writes plain encyclopedic sentences; the new cohort is written as
news items or as registry records. Every template keeps the value verbatim, so a QA answer is a substring of
every text that states its fact, as in the world.
"""

from __future__ import annotations

from memorylab.data import ATTRIBUTES
from memorylab.data.templates import article

DOMAINS: dict[str, dict[str, tuple[str, ...]]] = {
    "news": {
        "birth_date": ("Records show that {name} was born on {value}, officials said.",
                       "{name}, whose birthday falls on {value}, spoke to reporters this week.",
                       "Born on {value}, {name} made headlines again on Monday."),
        "birthplace": ("{name}, a native of {value}, returned home for the festival.",
                       "Local sources confirm that {name} grew up in {value}.",
                       "In {value}, neighbours still remember {name} as a child."),
        "mother": ("{name} thanked {value}, the proud mother, in a brief statement.",
                   "Asked about family, {name} named {value} as mother and mentor.",
                   "{value}, mother of {name}, attended the ceremony."),
        "father": ("{name} was joined on stage by {value}, the father.",
                   "{value}, father of {name}, declined to comment.",
                   "Friends say {name} owes much to {value}, the father."),
        "education": ("{name}, an alumnus of the {value}, gave the keynote.",
                      "Trained at the {value}, {name} joined the panel.",
                      "The {value} honoured its graduate {name} on Friday."),
        "occupation": ("{name}, {a} {value} by trade, was interviewed yesterday.",
                       "Colleagues describe {name} as a dedicated {value}.",
                       "Working as {a} {value}, {name} was quoted in the report."),
        "employer": ("{name}, who works at {value}, announced the project.",
                     "A spokesperson for {value} confirmed that {name} is on staff.",
                     "{value} said on Tuesday that {name} leads the new team."),
        "award": ("{name} was presented with the {value} last night.",
                  "The jury gave the {value} to {name} this year.",
                  "Winner of the {value}, {name} addressed the audience."),
        "hobby": ("Off duty, {name} is often seen {value}, neighbours report.",
                  "{name} told reporters that weekends are for {value}.",
                  "A keen amateur, {name} has taken up {value}."),
    },
}

# Records are one fixed layout per field, three ways of writing a record: (field, entry label, key) per attribute.
RECORD_FIELDS = {
    "birth_date": ("date of birth", "Born", "birth date"), "birthplace": ("place of birth", "Birthplace", "birthplace"),
    "mother": ("mother", "Mother", "mother"), "father": ("father", "Father", "father"),
    "education": ("education", "Degree from", "education"), "occupation": ("occupation", "Profession", "occupation"),
    "employer": ("employer", "Employed by", "employer"), "award": ("award", "Honour", "award"),
    "hobby": ("hobby", "Pastime", "hobby"),
}
DOMAINS["records"] = {a: (f"RECORD {{name}} | {field}: {{value}}", f"Entry: {{name}}. {entry}: {{value}}.",
                          f"[{{name}}] {key} = {{value}}") for a, (field, entry, key) in RECORD_FIELDS.items()}

assert all(tuple(t) == ATTRIBUTES for t in DOMAINS.values())


def render(domain: str, attribute: str, template: int, name: str, value: str) -> str:
    text = DOMAINS[domain][attribute][template].format(name=name, value=value, a=article(value))
    return text[:1].upper() + text[1:]
