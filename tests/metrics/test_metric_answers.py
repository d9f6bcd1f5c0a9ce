"""Answer scores as LoCoMo's evaluation computes them: its normalisation, set exact match, stemmed token F1,
multi-hop parts, open-domain's first part, and abstention for questions nothing answers."""

from __future__ import annotations

import pytest

from memorylab.metrics.answers import answer_scores, exact_match, normalize_answer, says_abstain, token_f1


def test_normalisation_drops_case_punctuation_articles_and_and():
    assert normalize_answer("The Lisbon, and  Porto!") == "lisbon porto"
    assert normalize_answer("An apple a day") == "apple day"


def test_exact_match_compares_word_sets():
    assert exact_match("Lisbon.", "lisbon") == 1.0
    assert exact_match("Porto and Lisbon", "Lisbon, Porto") == 1.0  # LoCoMo compares sets of words
    assert exact_match("Lisbon Portugal", "Lisbon") == 0.0


def test_token_f1_stems_words():
    assert token_f1("running races", "ran a race") == pytest.approx(0.5)  # race/races share a stem, ran/running not
    assert token_f1("painting", "paints") == 1.0
    assert token_f1("", "Lisbon") == 0.0


def test_multi_hop_scores_each_gold_part_against_the_best_predicted_part():
    scores = answer_scores("Lisbon, chess", ["Lisbon, chess, tennis"], category="multi-hop")
    assert scores["f1"] == pytest.approx(2 / 3) and scores["exact_match"] == 0.0
    both = answer_scores("Lisbon, chess", ["Lisbon", "chess"])  # a synthetic probe with two parts
    assert both == {"exact_match": 1.0, "f1": 1.0}


def test_open_domain_reads_the_gold_answer_before_its_semicolon():
    assert answer_scores("likely yes", ["Likely yes; she said so"], category="open-domain")["f1"] == 1.0


@pytest.mark.parametrize("prediction, expected", [("unknown", 1.0), ("Unknown.", 1.0),
                                                  ("No information available", 1.0), ("Lisbon", 0.0)])
def test_unanswerable_questions_score_an_abstention(prediction, expected):
    assert answer_scores(prediction, [], unanswerable=True) == {"exact_match": expected, "f1": expected}
    assert answer_scores(prediction, ["anything"], category="adversarial")["exact_match"] == expected


def test_a_custom_abstention_text():
    assert says_abstain("I don't know", "I don't know") and not says_abstain("unknown", "I don't know")
