"""Per-item scoring and aggregation on hand-made answers (no models)."""

from __future__ import annotations

import pytest

from evals.dataset import EvalItem
from evals.runner import aggregate, score_answer
from service.result import ABSTAIN_ANSWER, Answer, Citation, SentenceCheck


def _cite(n: int, source: str, support: float) -> Citation:
    return Citation(
        n=n, source=source, title="t", chunk_id=f"c{n}", start=0, end=4, quote="q", support=support
    )


def _answer(text: str, citations: list[Citation], **kw: object) -> Answer:
    values: dict[str, object] = {
        "question": "q",
        "standalone_question": "q",
        "answer": text,
        "abstained": False,
        "confidence": 0.9,
        "mode": "extractive",
        "citations": citations,
    }
    values.update(kw)
    return Answer.model_validate(values)


ITEM = EvalItem(
    id="x",
    category="factoid",
    question="Where is the base?",
    answerable=True,
    answers=["Hamadan Airbase", "Hamadan"],
    sources=["a.txt"],
)


def test_correct_answer_with_citations() -> None:
    answer = _answer(
        "Warplanes flew from Hamadan Airbase [1]. Russia denied it [2].",
        [_cite(1, "a.txt", 0.9), _cite(2, "b.txt", 0.9)],
        short_answer="Hamadan Airbase",
        sentences=[
            SentenceCheck(text="s", citations=[1], support=0.9, action="kept"),
            SentenceCheck(text="s", citations=[3], support=0.1, action="removed"),
        ],
    )
    r = score_answer(ITEM, answer, min_support=0.5, judge=None, ranked_sources=["b.txt", "a.txt"])
    assert r.correct and r.outcome == "correct" and r.score == 1
    assert r.exact_match == 1.0 and r.f1 == 1.0
    assert r.gold_rank == 2
    assert (r.citations_good, len(r.citations)) == (1, 2)  # b.txt is not a gold source
    assert (r.sentences, r.sentences_cited, r.sentences_removed) == (2, 2, 1)
    assert r.got == "Warplanes flew from Hamadan Airbase. Russia denied it."


def test_weak_citation_counts_against_precision_and_recall() -> None:
    answer = _answer("It was Hamadan [1].", [_cite(1, "a.txt", 0.3)])
    r = score_answer(ITEM, answer, min_support=0.5, judge=lambda a: 0)
    assert r.correct
    assert r.citations_good == 0
    assert (r.sentences, r.sentences_cited, r.sentences_faithful) == (1, 0, 0)


def test_wrong_answer_and_abstentions() -> None:
    wrong = score_answer(
        ITEM, _answer("Tehran [1].", [_cite(1, "a.txt", 0.9)]), min_support=0.5, judge=None
    )
    assert (wrong.outcome, wrong.score) == ("wrong", -1)
    abstained = _answer(ABSTAIN_ANSWER, [], abstained=True)
    r = score_answer(ITEM, abstained, min_support=0.5, judge=None)
    assert (r.outcome, r.score, r.exact_match, r.sentences) == ("abstained", 0, 0.0, 0)
    unans = EvalItem(id="u", category="absent", question="q", answerable=False)
    r = score_answer(unans, abstained, min_support=0.5, judge=None)
    assert (r.outcome, r.score, r.exact_match) == ("abstained", 1, 1.0)
    r = score_answer(
        unans, _answer("Tehran [1].", [_cite(1, "a.txt", 0.9)]), min_support=0.5, judge=None
    )
    assert (r.outcome, r.score) == ("answered", -1)


def test_list_answer_needs_every_required_item() -> None:
    item = EvalItem(
        id="l",
        category="list",
        question="Which?",
        answerable=True,
        answers=["Iraq, Syria and Hezbollah"],
        required=["Iraq", ["Syria", "Syrian"], "Hezbollah"],
        sources=["a.txt"],
    )
    full = _answer(
        "An alliance of Iraq, Syria and Lebanon's Hezbollah [1].", [_cite(1, "a.txt", 1)]
    )
    part = _answer("An alliance of Iraq and Syria [1].", [_cite(1, "a.txt", 1)])
    assert score_answer(item, full, min_support=0.5, judge=None).correct
    assert not score_answer(item, part, min_support=0.5, judge=None).correct


def test_aggregate() -> None:
    results = [
        score_answer(
            ITEM,
            _answer("Hamadan [1].", [_cite(1, "a.txt", 0.9)]),
            min_support=0.5,
            judge=lambda a: 1,
            ranked_sources=["a.txt"],
            latency_ms=10,
        ),
        score_answer(
            ITEM,
            _answer(ABSTAIN_ANSWER, [], abstained=True),
            min_support=0.5,
            judge=lambda a: 1,
            ranked_sources=["b.txt"],
            latency_ms=30,
        ),
        score_answer(
            EvalItem(id="u", category="c", question="q", answerable=False),
            _answer("Tehran [1].", [_cite(1, "b.txt", 0.9)]),
            min_support=0.5,
            judge=lambda a: 0,
            latency_ms=20,
        ),
    ]
    m = aggregate(results)
    assert m["items"] == 3 and m["answerable"] == 2 and m["unanswerable"] == 1
    assert m["retrieval.hit@1"] == 0.5 and m["retrieval.mrr"] == 0.5
    assert m["answer.containment"] == 0.5 and m["answer.containment_answered"] == 1.0
    assert m["abstention.rate_unanswerable"] == 0.0
    assert m["abstention.false_rate_answerable"] == 0.5
    assert m["score"] == pytest.approx((1 + 0 - 1) / 3)
    assert m["citations.precision"] == 1.0  # only answered answerable items
    assert m["faithfulness"] == 0.5  # one of the two answered sentences
    assert m["latency.median_ms"] == 20 and m["latency.p95_ms"] == pytest.approx(29)
