"""The eval metrics on hand-made inputs (no models)."""

from __future__ import annotations

import pytest

from evals import metrics as m


def test_normalize_matches_official_squad() -> None:
    assert m.normalize_answer("The  Hamadan Airbase!") == "hamadan airbase"
    assert m.normalize_answer("an apple, a pear") == "apple pear"
    # Official SQuAD deletes (not spaces) punctuation, and leaves non-ASCII quotes alone.
    assert m.normalize_answer("cease-fire") == "ceasefire"
    assert m.normalize_answer("Russia’s") == "russia’s"


def test_exact_match() -> None:
    assert m.exact_match("Wadi Barada", "the wadi barada.") == 1
    assert m.exact_match("Wadi Barada", "Wadi Barada valley") == 0
    assert m.max_exact(["Hamadan", "Hamadan Airbase"], "Hamadan airbase") == 1


def test_f1() -> None:
    assert m.f1("Wadi Barada", "Wadi Barada valley") == pytest.approx(0.8)
    assert m.f1("Wadi Barada", "Damascus") == 0.0
    assert m.f1("four", "four") == 1.0
    assert m.max_f1(["x y", "Wadi Barada"], "the Wadi Barada valley") == pytest.approx(0.8)


def test_no_answer_scoring_follows_the_official_script() -> None:
    # A no-answer question is right only when the prediction is empty (an abstention).
    assert m.max_exact([], "") == 1
    assert m.max_f1([], "") == 1.0
    assert m.max_exact([], "Tehran") == 0
    assert m.max_f1(["Tehran"], "") == 0.0


def test_containment_is_on_whole_tokens() -> None:
    text = "Russia responded by sending four officers [2] to access the violations."
    assert m.contains(text, "four officers")
    assert m.contains(text, "Four")
    assert not m.contains(text, "fourteen")
    assert not m.contains("Geneva II talks", "Geneva I")
    assert m.contains("Russia, one of the countries that sponsored Geneva I, has", "Geneva I")
    assert not m.contains("anything", "")


def test_containment_handles_typographic_punctuation_and_possessives() -> None:
    assert m.contains("Russia’s intervention was the surprise", "Russia's intervention")
    assert m.contains("the ‘counter-terrorism’ alliance", "counter-terrorism alliance")
    assert m.contains("a “turbulent foreign policy” and", "turbulent foreign policy")
    assert m.contains("Bashar Al-Assad’s government", "Bashar Al-Assad")


def test_list_answers_need_every_group() -> None:
    text = "Lebanon, Iraq, Iran, Afghanistan andPakistan"
    groups = [["Lebanon"], ["Iraq"], ["Pakistan", "andPakistan"]]
    assert m.contains_all(text, groups)
    assert not m.contains_all("Lebanon and Iraq", groups)


def test_strip_markers() -> None:
    assert m.strip_markers("It was Hamadan [1] airbase [2][3].") == "It was Hamadan airbase."


def test_ranks_hit_at_k_and_mrr() -> None:
    ranked = ["b.txt", "b.txt", "a.txt", "c.txt"]
    rank = m.first_gold_rank(ranked, ["a.txt"])
    assert rank == 3
    assert m.hit_at_k(rank, 1) == 0.0
    assert m.hit_at_k(rank, 3) == 1.0
    assert m.reciprocal_rank(rank) == pytest.approx(1 / 3)
    assert m.first_gold_rank(ranked, ["z.txt"]) is None
    assert m.hit_at_k(None, 10) == 0.0
    assert m.reciprocal_rank(None) == 0.0
    assert m.first_gold_rank(ranked, ["c.txt", "b.txt"]) == 1


@pytest.mark.parametrize(
    ("answerable", "abstained", "correct", "expected_score", "expected_outcome"),
    [
        (True, False, True, 1, "correct"),
        (True, False, False, -1, "wrong"),
        (True, True, False, 0, "abstained"),
        (False, True, False, 1, "abstained"),
        (False, False, False, -1, "answered"),
        (False, False, True, -1, "answered"),
    ],
)
def test_score_and_outcome(
    answerable: bool, abstained: bool, correct: bool, expected_score: int, expected_outcome: str
) -> None:
    assert m.score(answerable, abstained, correct) == expected_score
    assert m.outcome(answerable, abstained, correct) == expected_outcome


def test_mean_and_percentile() -> None:
    assert m.mean([]) is None
    assert m.mean([1, 2, 3]) == 2
    assert m.percentile([], 50) is None
    assert m.percentile([10, 20, 30, 40], 50) == pytest.approx(25)
    assert m.percentile([float(i) for i in range(1, 101)], 95) == pytest.approx(95.05)
