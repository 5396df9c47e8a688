"""WordNet as read by service.lexicon, and the abstention checks built on it."""

from __future__ import annotations

from service.abstain import swapped_for_opposite
from service.lexicon import antonyms, base_forms, other_names, stop_words


def test_wordnet_antonyms() -> None:
    a = antonyms()
    assert "decrease" in a["increase"] and "increase" in a["decrease"]
    assert "small" in a["large"]
    # lexical antonymy only: "look" shares a sense with "front", whose opposite is "back"
    assert "back" not in a.get("look", frozenset())
    assert all(w in a[b] for w, bs in list(a.items())[:500] for b in bs)  # symmetric


def test_base_forms_follow_wordnet_morphy() -> None:
    assert base_forms("increased") == {"increased", "increase"}
    assert {"run"} <= base_forms("running")
    assert {"go"} <= base_forms("went")  # an exception list entry
    assert {"good", "well"} <= base_forms("better")
    assert {"child"} <= base_forms("children")
    # a form WordNet does not list is not invented: "ring" + "s" is, "thi" + "s" is not
    assert base_forms("this") == {"this"}


def test_stop_words_are_spacys_list() -> None:
    stops = stop_words()
    assert {"be", "first", "the"} <= stops and "increase" not in stops
    assert len(stops) > 300


def test_a_question_word_swapped_for_its_opposite() -> None:
    sentence = "Exports increased sharply in 2010, while imports fell."
    assert swapped_for_opposite("When did exports decrease?", [sentence])
    assert not swapped_for_opposite("When did exports increase?", [sentence])
    # the word before the answer sentence counts as evidence too
    assert not swapped_for_opposite("When did imports fall?", ["Imports fell.", sentence])
    # stop words are not opposed ("be" and "differ" are WordNet antonyms), nor are names
    assert not swapped_for_opposite("What is Russia proposing?", ["How Russia and Iran Differ"])
    assert not swapped_for_opposite("Which Small Business Act passed?", ["A large act passed."])


def test_wordnet_other_names_of_a_place() -> None:
    assert {"Russia", "Russian Federation"} <= other_names("Moscow")  # a capital, its country
    assert "Tehran" in other_names("Iran") and "Iran" in other_names("Tehran")
    assert {"United States", "U.S."} <= other_names("Americans")  # its people
    assert "Netherlands" in other_names("Dutch")
    assert "Iran" in other_names("Iran's")
    # names that WordNet does not know, and organisations a country belongs to, are not aliases
    assert other_names("Soleimani") == frozenset()
    assert "NATO" not in other_names("US") and "North Atlantic Treaty Organization" not in (
        other_names("US")
    )
