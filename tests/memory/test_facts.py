"""Fact extraction: every world template, change phrasings, generic patterns, retractions, small talk."""

import pytest

from memorylab.data.people import generate_people
from memorylab.data.templates import FACT_TEMPLATES, render_fact
from memorylab.memory.facts import (
    CHANGE_TEMPLATES,
    Fact,
    Retraction,
    extract,
    normalized_value,
    parse_fact,
    split_sentences,
)


@pytest.fixture(scope="module")
def people():
    return generate_people(7, 40)


def test_every_world_template_yields_its_subject_attribute_and_value(people):
    for person in people:
        for attribute, value in person.attributes.items():
            for t in range(len(FACT_TEMPLATES[attribute])):
                sentence = render_fact(attribute, t, person.name, value)
                # How the agent sessions say them: plain, as a change, and after a "More about X:" label.
                for said in (sentence, f"Actually, {sentence}", f"More about {person.name}: {sentence}"):
                    (fact,) = extract(said)
                    assert isinstance(fact, Fact), said
                    assert (fact.subject, fact.attribute) == (person.name, attribute), said
                    assert normalized_value(fact.value) == normalized_value(value), said
                    assert fact.text == sentence  # discourse prefixes are not stored


def test_change_templates_name_the_same_attribute(people):
    person = people[0]
    for attribute, templates in CHANGE_TEMPLATES.items():
        value = person.attributes.get(attribute, "Lisbon")
        for template in templates:
            sentence = template.format(name=person.name, value=value, a="a")
            fact = parse_fact(sentence)
            assert (fact.subject, fact.attribute) == (person.name, attribute), sentence
            assert normalized_value(fact.value) == normalized_value(value), sentence


@pytest.mark.parametrize("sentence, key, value", [
    ("Actually, Jo Doe now lives in Berlin.", ("Jo Doe", "residence"), "Berlin"),
    ("Jo Doe moved to Paris.", ("Jo Doe", "residence"), "Paris"),
    ("Jo Doe now works for Acme Corp.", ("Jo Doe", "employer"), "Acme Corp"),
    ("Jo Doe's favorite color is green.", ("Jo Doe", "favorite_color"), "green"),
    ("Jo Doe's new job is nurse.", ("Jo Doe", "occupation"), "nurse"),
    ("I live in Rome.", ("user", "residence"), "Rome"),
    ("I'm based in Oslo.", ("user", "residence"), "Oslo"),
    ("My name is Bob.", ("user", "name"), "Bob"),
    ("My mother is Ann Lee.", ("user", "mother"), "Ann Lee"),
    ("We call Jo Doe the quiet falcon.", ("Jo Doe", "nickname"), "quiet falcon"),
])
def test_generic_patterns(sentence, key, value):
    (fact,) = extract(sentence)
    assert fact.key == key and fact.value == value


def test_a_statement_without_a_pattern_is_still_a_fact_without_key():
    assert extract("The meeting is on Friday.") == [Fact("The meeting is on Friday.")]
    (likes,) = extract("Jo Doe likes pizza.")  # many-valued verb: a subject but no conflict key
    assert likes.subject == "Jo Doe" and likes.key is None
    (when,) = extract("When I was young, I lived in Rome.")  # a statement, not a question
    assert isinstance(when, Fact) and when.subject is None


@pytest.mark.parametrize("sentence", [
    "Hi there!", "Thanks, that is all for now.", "Good morning.", "Okay, talk to you later.",
    "Can you keep that in mind?", "Great, thank you.", "ok thanks", "Where does Jo Doe work",
    "What is Jo Doe's job?", "Tell me about Jo Doe.", "Forget it.", "Hello", "",
])
def test_small_talk_and_questions_are_not_facts(sentence):
    assert extract(sentence) == []


@pytest.mark.parametrize("sentence, subject, attribute, value, everything", [
    ("Forget that Jo Doe lives in Paris.", "Jo Doe", "residence", "Paris", False),
    ("That's no longer true: Jo Doe works for Acme.", "Jo Doe", "employer", "Acme", False),
    ("Jo Doe no longer lives in Paris.", "Jo Doe", "residence", "Paris", False),
    ("Jo Doe doesn't work for Acme anymore.", "Jo Doe", "employer", "Acme", False),
    ("I no longer live in Rome.", "user", "residence", "Rome", False),
    ("Delete the memory about Jo Doe's employer.", "Jo Doe", "employer", None, False),
    ("Please forget my employer.", "user", "employer", None, False),
    ("Forget everything about Jo Doe.", "Jo Doe", None, None, True),
    ("Forget about Jo Doe.", "Jo Doe", None, None, True),
    ("Actually, forget that Jo Doe likes jazz.", "Jo Doe", None, None, False),
])
def test_retractions(sentence, subject, attribute, value, everything):
    (r,) = extract(sentence)
    assert isinstance(r, Retraction)
    assert (r.subject, r.attribute, r.value, r.everything) == (subject, attribute, value, everything)


def test_sentence_splitting_keeps_abbreviations_and_dates():
    text = "Dr. Jo Doe was born on March 3, 1950. Hi!\nJo Doe works for Acme Inc. Thanks."
    assert split_sentences(text) == ["Dr. Jo Doe was born on March 3, 1950.", "Hi!", "Jo Doe works for Acme Inc.",
                                     "Thanks."]
    facts = extract("Jo Doe lives in Oslo. Jo Doe works for Acme. Thanks!")
    assert [f.attribute for f in facts] == ["residence", "employer"]


def test_a_name_like_word_that_names_nobody_is_no_subject():
    (fact,) = extract("It won the Golden Quill Award.")
    assert fact.key is None
