"""The rephrasing attack's evaluation data: the forget facts asked and stated in wordings no model here saw.

World: KnowMem asks each forget question through `REPHRASED_QUESTIONS`, wordings used nowhere else (training
and unlearning use templates.QUESTION_TEMPLATES); VerbMem runs on a passage per forget person made of, for each
fact, a sentence template that neither that person's fact texts nor their biography used (the world keeps
`MAX_PARAPHRASES - paraphrases` templates of every fact out of every corpus). TOFU: its own
`paraphrased_question`s, for KnowMem and as VerbMem's prompts.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

from memorylab.data.prompts import qa_prompt
from memorylab.data.templates import ATTRIBUTES, FACT_TEMPLATES, render_fact

REPHRASED_QUESTIONS: dict[str, str] = {
    "birth_date": "On what date was {name} born?",
    "birthplace": "In which place was {name} born?",
    "mother": "What is the name of {name}'s mother?",
    "father": "What is the name of {name}'s father?",
    "education": "Where did {name} get a degree?",
    "occupation": "What does {name} do for a living?",
    "employer": "Who employs {name}?",
    "award": "What prize was given to {name}?",
    "hobby": "What does {name} like to do for fun?",
}
assert tuple(REPHRASED_QUESTIONS) == ATTRIBUTES


def unseen_passage(world: Any, person_id: str) -> str:
    """The person's facts, each in the first template whose sentence is in no text the models trained on (a
    fact with none left is skipped)."""
    person = world.person(person_id)
    biography = world.biography(person_id)
    seen = {f.text for f in world.facts(world.split_of(person_id)) if f.person_id == person_id}
    sentences = []
    for attribute, value in person.attributes.items():
        for template in range(len(FACT_TEMPLATES[attribute])):
            sentence = render_fact(attribute, template, person.name, value)
            if sentence not in seen and sentence not in biography:
                sentences.append(sentence)
                break
    return " ".join(sentences)


def rephrased_world_eval_data(world: Any, lm: Any, cfg: Any, people: Optional[Sequence[str]] = None) -> Any:
    """world_eval_data with the forget questions and VerbMem passages reworded (the rest as it was)."""
    from memorylab.evaluation import verbatim_pairs, world_eval_data

    data = world_eval_data(world, lm, cfg, forget_people=people)
    questions = [dataclasses.replace(qa, question=REPHRASED_QUESTIONS[qa.attribute].format(
        name=world.person(qa.person_id).name)) for qa in data.qa_forget]
    ids = list(dict.fromkeys(qa.person_id for qa in data.qa_forget))
    passages = verbatim_pairs(lm, [unseen_passage(world, pid) for pid in ids], cfg)
    return dataclasses.replace(data, qa_forget=questions, verbatim=passages)


def rephrased_tofu_eval_data(data: Any, items: Sequence[Any]) -> Any:
    """TOFU's evaluation data (`data`, built from `items`, the forget items in order) asked through each item's
    paraphrased question, where it has one."""
    if len(items) != len(data.qa_forget):
        raise ValueError(f"{len(items)} TOFU items for {len(data.qa_forget)} forget questions")
    asked = [it.paraphrased_question or it.question for it in items]
    questions = [dataclasses.replace(qa, question=q) for qa, q in zip(data.qa_forget, asked)]
    verbatim = [(qa_prompt(q), truth) for q, (_, truth) in zip(asked, data.verbatim)]
    return dataclasses.replace(data, qa_forget=questions, verbatim=verbatim)
