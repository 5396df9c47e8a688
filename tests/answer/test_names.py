"""The name check behind the ``name_missing`` veto: a question's name counts as present when
the answer's passage, another name for it, or the rest of its document mentions it."""

from __future__ import annotations

from index import Index
from service.abstain import absent_names

SOURCE = "000_e8b04126fa046505.txt"
# a passage of SOURCE that names neither Aleppo nor Moscow
PASSAGE = "Iran also opposes any presence by the U.S. at the talks."


def test_a_name_elsewhere_in_the_document_is_not_absent(default_index: Index) -> None:
    assert "Aleppo" not in PASSAGE
    assert absent_names(["Aleppo"], PASSAGE, {SOURCE}, default_index.containing) == []
    # without the document, the passage alone lacks it
    assert absent_names(["Aleppo"], PASSAGE, {SOURCE}, None) == ["Aleppo"]


def test_another_name_in_the_passage_counts() -> None:
    # "the Americans" for "the U.S."
    assert absent_names(["Americans"], PASSAGE, {SOURCE}, None) == []
    assert absent_names(["Australia"], PASSAGE, {SOURCE}, None) == ["Australia"]


def test_a_name_the_corpus_never_mentions_stays_absent(default_index: Index) -> None:
    got = absent_names(["Australia", "Fahrenheit"], PASSAGE, {SOURCE}, default_index.containing)
    assert got == ["Australia", "Fahrenheit"]
    # Canberra would stand for Australia, which the document never names either
    assert absent_names(["Canberra"], PASSAGE, {SOURCE}, default_index.containing) == ["Canberra"]
