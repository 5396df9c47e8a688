"""The model-free heuristics, on sentences of the default corpus."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from service import text as tx
from service.abstain import conflicts
from service.condense import HeuristicCondenser, is_follow_up, without_corpus_references
from service.result import Turn

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


def test_sentence_spans_slice_the_text_exactly() -> None:
    for path in CORPUS.glob("*.txt"):
        text = path.read_text(encoding="utf-8")
        spans = tx.sentence_spans(text)
        assert len(spans) > 20
        for s, e in spans:
            piece = text[s:e]
            assert piece == piece.strip() and piece
            assert "\n" not in piece  # lines never merge
        assert spans == sorted(spans)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("When was the ceasefire announced?", "date"),
        ("In which year did the war start?", "year"),
        ("How many officers were sent?", "number"),
        ("How much aid did they give?", "number"),
        ("Who said it?", "person"),
        ("Which minister spoke?", "person"),
        ("Where is the airbase?", "place"),
        ("What city hosted the talks?", "place"),
        ("Why did Iran balk?", "other"),
    ],
)
def test_answer_type(question: str, kind: str) -> None:
    assert tx.answer_type(question) == kind


def test_candidate_spans_find_numbers_dates_and_names() -> None:
    s = (
        "Russia responded by sending four officers to access the violations of the truce, "
        "but they were barred from the area by Iranian backed Hezbollah troops."
    )
    assert [s[a:b] for a, b in tx.candidate_spans(s, "number")] == ["four"]
    assert tx.candidate_spans(s, "year") == []
    d = "These problems began with Moscow’s announcement in August 2016 that its warplanes flew."
    assert [d[a:b] for a, b in tx.candidate_spans(d, "date")] == ["August 2016"]
    n = "Before the talks at Astana began, Iranian Foreign Minister Mohammad Javad Zarif said so."
    assert "Iranian Foreign Minister Mohammad Javad Zarif" in [
        n[a:b] for a, b in tx.candidate_spans(n, "person")
    ]


def test_names_match_their_adjectives() -> None:
    assert tx.entity_match("Iran", "Iranian")
    assert tx.entity_match("Russian", "Russia")
    assert tx.entity_match("Iranian", "Iranian-backed")
    assert not tx.entity_match("Iran", "Iraq")
    assert not tx.entity_match("Russian", "Iranian")


def test_modifier_conflict_is_detected_and_agreement_is_not() -> None:
    sentence = "Russia responded by sending four officers, but Iranian troops barred them."
    asked_wrong = tx.analyse("How many Iranian officers were sent?")
    asked_right = tx.analyse("How many Iranian troops barred them?")
    assert conflicts(asked_wrong, sentence) == 1
    assert conflicts(asked_right, sentence) == 0
    of_phrase = "Iran pumped aid into the embattled regime of President Bashar al-Assad."
    assert conflicts(tx.analyse("How much aid went to the Assad regime?"), of_phrase) == 0


def test_a_noun_placed_by_a_name_conflicts_with_another_place() -> None:
    q = tx.analyse("From which airbase in Iran did Moscow launch its warplanes?")
    elsewhere = "Plans are underway to form a permanent Russian military base in Lattakia."
    there = "Its warplanes were launched from Hamadan Airbase in Iran's western provinces."
    assert conflicts(q, elsewhere) == 1  # "base" is the end of "airbase"
    assert conflicts(q, there) == 0
    # only after a determiner: a verb ("to establish in Syria") or a longer noun phrase
    # ("a military base in Syria", which may hold the answer's own place) is left alone
    assert tx.analyse("What does Tehran want to establish in Syria?").modified == ()
    assert tx.analyse("Where is the military base in Syria?").modified == ()


def test_a_possessive_name_qualifies_the_noun_after_its_adjectives() -> None:
    q = tx.analyse("Who was Russia's foreign minister at the time of the talks?")
    assert ("Russia",) in [m.modifiers for m in q.modified]
    # "foreign" is only an adjective in WordNet: the noun is "minister"
    assert {m.head for m in q.modified} == {"minister"}
    said = "A week earlier, Iranian Foreign Minister Mohammad Javad Zarif said it was over."
    assert conflicts(q, said, answer="Mohammad Javad Zarif") == 1
    own = tx.analyse("Who is Iran's foreign minister?")
    assert conflicts(own, said, answer="Mohammad Javad Zarif") == 0
    assert tx.analyse("Which Russian foreign minister spoke?").modified[0].head == "minister"
    # a possessive marks the topic, which the evidence calls "this announcement" in a clause
    # naming other places: only the words right before the noun may give it another owner
    topic = tx.analyse("Why was Moscow's announcement met with outrage?")
    assert conflicts(topic, "This announcement was met by outrage in Iran.") == 0
    assert conflicts(topic, "Tehran's announcement was met by outrage in Iran.") == 1
    # and the noun right after the name, not across a comma ("in Syria, according to")
    heads = [
        m.head for m in tx.analyse("What did Iran aim for in Syria, according to it?").modified
    ]
    assert "according" not in heads


def test_the_name_may_come_in_an_apposition_and_the_answer_is_no_rival() -> None:
    q = tx.analyse("Which Shiite shrine near Damascus is mentioned?")
    sentence = (
        "Tehran entered the conflict in defense of the ancient Sayyida Zaynab Shrine, an "
        "important Shiite holy site in the south of Damascus, but expanded its mission."
    )
    assert conflicts(q, sentence, answer="Sayyida Zaynab Shrine") == 0
    # a clause that is not an apposition does not lend its name
    other = "Tehran defended the Sayyida Zaynab Shrine, but Shiite militias came later."
    assert conflicts(q, other) == 1
    # the answer's own words are not someone else's ("which Iranian commander": Soleimani)
    led = tx.analyse("Which Iranian commander planned the offensive?")
    assert conflicts(led, "the offensive was planned by commander Qasem Soleimani") == 1
    assert (
        conflicts(led, "the offensive was planned by commander Qasem Soleimani", "Qasem Soleimani")
        == 0
    )


def test_split_citations_attaches_markers_to_their_sentence() -> None:
    parts = tx.split_citations(
        "Four officers were sent [1]. They were barred. [2] Iran balked [3][1]."
    )
    assert parts == [
        ("Four officers were sent.", [1]),
        ("They were barred.", [2]),
        ("Iran balked.", [3, 1]),
    ]


def test_follow_ups_are_detected() -> None:
    assert is_follow_up("Who said that?")
    assert is_follow_up("And what did Russia want?")
    assert is_follow_up("When did it happen?")
    assert not is_follow_up("When was the ceasefire in Syria announced?")


def test_condense_carries_names_and_terms_of_earlier_turns() -> None:
    c = HeuristicCondenser()
    history = [
        Turn(role="user", content="What happened in Wadi Barada?"),
        Turn(
            role="assistant",
            content="Assaults by Iranian troops have continued in Wadi Barada [1].",
        ),
    ]
    assert "Wadi Barada" in c.condense("Who was barred from it?", history)
    history = [
        Turn(role="user", content="What did Iran want in Syria after the ceasefire?"),
        Turn(role="assistant", content="Its goals in Syria had not yet been achieved [1]."),
    ]
    out = c.condense("And what did Russia want?", history)
    assert "Russia" in out and "ceasefire" in out
    assert "Iran" not in out.replace("Russia", "")  # the new subject replaces the old one
    # a self-contained question passes through untouched
    q = "When was the ceasefire in Syria announced?"
    assert c.condense(q, history) == q


@pytest.mark.parametrize(
    ("question", "parts"),
    [
        ("When was X founded, and when was Y closed?", 2),
        ("Who won and who lost?", 2),
        ("What did Iran and Russia want?", 1),  # "and" joining names, not questions
        ("What is the capital of France?", 1),
    ],
)
def test_compound_questions_split_at_a_second_question_word(question: str, parts: int) -> None:
    assert len(tx.compound_parts(question)) == parts


def test_sentence_spans_from_many_threads_match_one_thread() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from service.text import sentence_spans

    texts = [
        f"Russia sent {i} officers in January 2017. They were barred by Hezbollah. "
        f"Mr. Zarif said so on day {i}! Was it true? " * (1 + i % 4)
        for i in range(64)
    ]
    alone = [sentence_spans(t) for t in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(5):
            assert list(pool.map(sentence_spans, texts)) == alone


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (
            "Which Quds Force commander is named in the sources?",
            "Which Quds Force commander is named?",
        ),
        ("According to the documents, who leads Iran?", "Who leads Iran?"),
        ("What does CF stand for in this context?", "What does CF stand for?"),
        # a reference that does not close its clause is the topic, and a named one is a source
        ("What errors in the text of the treaty were fixed?", None),
        ("What did Iran want, according to the Syrian Observer article?", None),
        # nothing would be left to ask
        ("What is in the sources?", None),
    ],
)
def test_generic_references_to_the_corpus_are_dropped(question: str, expected: str | None) -> None:
    assert without_corpus_references(question) == (expected or question)
