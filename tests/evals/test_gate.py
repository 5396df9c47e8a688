"""The gate's decisions on hand-made run summaries."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Any

from evals import gate
from evals.dataset import DEFAULT_SET, load_set
from evals.runner import ItemResult, summarize


def _item(id_: str, answerable: bool, outcome: str, category: str = "c") -> ItemResult:
    score = {"correct": 1, "wrong": -1, "answered": -1}.get(outcome, 0 if answerable else 1)
    return ItemResult(
        id=id_,
        category=category,
        question="q",
        answerable=answerable,
        expected="e",
        abstained=outcome == "abstained",
        correct=outcome == "correct",
        outcome=outcome,
        score=score,
        gold_rank=1 if answerable else None,
    )


def _summary(outcomes: list[tuple[str, bool, str]]) -> dict[str, Any]:
    results = [_item(i, a, o) for i, a, o in outcomes]
    s = summarize(results, faithfulness=False)
    return {"meta": {"set_sha256": "abc", "mode": "extractive"}, **s}


GOOD = [
    ("a1", True, "correct"),
    ("a2", True, "correct"),
    ("a3", True, "abstained"),
    ("u1", False, "abstained"),
    ("u2", False, "abstained"),
]


def test_passes_when_nothing_changed() -> None:
    run = _summary(GOOD)
    thresholds = {"min": {"score": 0.5}, "tolerance": {"score": 0.0}}
    verdict = gate.check(run, thresholds, deepcopy(run))
    assert verdict.passed, verdict.failures
    assert verdict.flips == []


def test_absolute_threshold_names_the_metric() -> None:
    run = _summary([*GOOD[:3], ("u1", False, "answered"), ("u2", False, "answered")])
    verdict = gate.check(run, {"min": {"abstention.rate_unanswerable": 0.5}}, None)
    assert not verdict.passed
    assert verdict.failures[0].startswith("abstention.rate_unanswerable = 0.000 is below")


def test_max_threshold_and_unmeasured_metric() -> None:
    run = _summary(GOOD)
    verdict = gate.check(
        run, {"max": {"abstention.false_rate_answerable": 0.2}, "min": {"faithfulness": 0.9}}, None
    )
    assert any("abstention.false_rate_answerable = 0.333 is above" in f for f in verdict.failures)
    assert any("faithfulness: not measured" in f for f in verdict.failures)


def test_regression_against_baseline_names_metric_and_flipped_items() -> None:
    base = _summary(GOOD)
    now = _summary([("a1", True, "wrong"), *GOOD[1:3], ("u1", False, "answered"), GOOD[4]])
    thresholds = {"tolerance": {"score": 0.1, "abstention.rate_unanswerable": 0.1}}
    verdict = gate.check(now, thresholds, base)
    assert not verdict.passed
    assert any(
        f.startswith("score = ") and "worse than the baseline" in f for f in verdict.failures
    )
    assert any(f.startswith("abstention.rate_unanswerable") for f in verdict.failures)
    assert [(f.id, f.before, f.after, f.worse) for f in verdict.flips] == [
        ("a1", "correct", "wrong", True),
        ("u1", "abstained", "answered", True),
    ]


def test_lower_is_better_metrics_regress_upwards() -> None:
    base = _summary(GOOD)
    now = _summary([("a1", True, "abstained"), *GOOD[1:]])
    verdict = gate.check(now, {"tolerance": {"abstention.false_rate_answerable": 0.1}}, base)
    assert [f.split(" =")[0] for f in verdict.failures] == ["abstention.false_rate_answerable"]
    assert verdict.flips[0].worse


def test_improvement_within_tolerance_passes() -> None:
    base = _summary([("a1", True, "wrong"), *GOOD[1:]])
    verdict = gate.check(_summary(GOOD), {"tolerance": {"score": 0.0}}, base)
    assert verdict.passed
    assert [(f.before, f.after, f.worse) for f in verdict.flips] == [("wrong", "correct", False)]


def test_baseline_of_another_set_or_mode_fails_loudly() -> None:
    run = _summary(GOOD)
    other = deepcopy(run)
    other["meta"]["set_sha256"] = "zzz"
    verdict = gate.check(run, {"tolerance": {"score": 0.1}}, other)
    assert not verdict.passed and "set_sha256" in verdict.failures[0]
    assert not gate.check(run, {"tolerance": {"score": 0.1}}, None).passed


def test_category_thresholds() -> None:
    results = [_item("i1", False, "answered", "injection"), _item("i2", False, "abstained", "x")]
    run = {"meta": {}, **summarize(results, faithfulness=False)}
    t = {"categories": {"injection": {"min": {"abstention.rate_unanswerable": 1.0}}}}
    verdict = gate.check(run, t, None)
    assert verdict.failures == [
        "[injection] abstention.rate_unanswerable = 0.000 is below the minimum 1.0"
    ]
    missing = gate.check(run, {"categories": {"nope": {"min": {"score": 0}}}}, None)
    assert "no items" in missing.failures[0]


def test_committed_thresholds_and_baseline_fit_the_default_set() -> None:
    thresholds = gate.load_thresholds()
    assert thresholds["min"] and thresholds["tolerance"]
    baseline = gate.load_baseline()
    assert baseline is not None, "record evals/baseline.json with --update-baseline"
    import hashlib

    assert baseline["meta"]["set_sha256"] == hashlib.sha256(DEFAULT_SET.read_bytes()).hexdigest()
    assert {i["id"] for i in baseline["items"]} == {i.id for i in load_set(DEFAULT_SET)}
    # The committed baseline itself satisfies the committed thresholds.
    assert gate.check(baseline, thresholds, baseline).passed
    assert Path(gate.BASELINE).parent == Path(DEFAULT_SET).parent
