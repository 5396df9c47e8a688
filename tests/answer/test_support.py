"""The support model: the shipped weights (real model), their integrity check, the training
script, and what it says of claims against a real passage."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from index.settings import IndexSettings
from service.reader import sha256_of
from service.support import (
    MANIFEST,
    MODEL_DIR,
    WEIGHTS,
    Support,
    SupportIntegrityError,
    answer_features,
    shared_support,
)
from service.train_support import DATA, Config, load_pairs, squad_pairs, statement, train

SENTENCE = (
    "Russia responded by sending four officers to access the violations of the truce, but "
    "they were barred from the area by Iranian backed Hezbollah troops."
)


@pytest.fixture(scope="module")
def support() -> Support:
    settings = IndexSettings()  # as the service runs it
    return shared_support(precision=settings.precision, cache_dir=settings.model_cache_dir)


def test_shipped_weights_match_their_manifest() -> None:
    manifest = json.loads((MODEL_DIR / MANIFEST).read_text(encoding="utf-8"))
    assert sha256_of(MODEL_DIR / WEIGHTS) == manifest["sha256"]
    assert (MODEL_DIR / WEIGHTS).stat().st_size < 50_000_000  # fp16, embeddings not shipped
    assert (MODEL_DIR / "MODEL_CARD.md").is_file()


def test_supported_claims_score_above_unsupported_ones(support: Support) -> None:
    good = [
        "Russia sent four officers to access violations of the truce.",
        "Hezbollah troops barred the Russian officers from the area.",
    ]
    bad = [
        "Russia sent five officers to access the violations of the truce.",
        "How many officers did Russia send?",
        "It includes:",
    ]
    p = support.score([(SENTENCE, c) for c in good + bad])
    assert min(p[: len(good)]) >= 0.5, p
    assert max(p[len(good) :]) < 0.5, p


@pytest.mark.xfail(
    strict=True,
    reason="known miss of this version (model card): an antonym of the verb still scores "
    "above 0.5 (0.70), though below the claim it reverses",
)
def test_an_antonym_scores_below_half(support: Support) -> None:
    (p,) = support.score([(SENTENCE, "Hezbollah troops welcomed the Russian officers.")])
    assert p < 0.5


def test_answer_support_ranks_the_answer_above_wrong_ones(support: Support) -> None:
    q = "Who barred the Russian officers from the area?"
    right = answer_features(support, q, "Iranian backed Hezbollah troops", SENTENCE)
    wrong = [answer_features(support, q, a, SENTENCE) for a in ("four officers", "Russia")]
    assert all(right["support_answer"] > w["support_answer"] for w in wrong)
    assert answer_features(support, q, None, SENTENCE) == {"support_answer": 0.0}


def test_int8_scores_as_fp32_does(tmp_path: Path) -> None:
    pairs = [
        (SENTENCE, "Russia sent four officers."),
        (SENTENCE, "Russia sent no one at all, according to the report."),
    ]
    a = Support(precision="fp32").score(pairs)
    b = Support(precision="int8", cache_dir=tmp_path).score(pairs)
    assert a[0] > 0.5 > a[1] and b[0] > 0.5 > b[1]
    assert np.allclose(a, b, atol=0.1), (a, b)


def test_corrupt_weights_fail_loudly(tmp_path: Path) -> None:
    broken = tmp_path / "support"
    shutil.copytree(MODEL_DIR, broken)
    data = bytearray((broken / WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (broken / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(SupportIntegrityError, match="sha256"):
        Support(broken).score([("a", "b")])


def test_missing_weights_fail_loudly(tmp_path: Path) -> None:
    with pytest.raises(SupportIntegrityError, match="not found"):
        Support(tmp_path).score([("a", "b")])


def test_statement_turns_only_subject_questions_around() -> None:
    assert statement("Who founded the city?", "Rollo") == "Rollo founded the city."
    assert statement("Which company was sold in 1990?", "Acme") == "Acme was sold in 1990."
    assert statement("When did the war end?", "1945") is None


def test_squad_pairs_cover_every_kind_with_consistent_labels() -> None:
    context = (
        "Rollo founded the duchy in 911. The duchy had 4,000 knights. "
        "Its capital was Rouen, a city on the Seine."
    )
    article = {
        "title": "T",
        "paragraphs": [
            {
                "context": context,
                "qas": [
                    {
                        "question": "Who founded the duchy?",
                        "answers": [{"text": "Rollo", "answer_start": 0}],
                    },
                    {
                        "question": "What was the capital?",
                        "answers": [{"text": "Rouen", "answer_start": context.index("Rouen")}],
                    },
                    {
                        "question": "who destroyed the duchy?",
                        "answers": [],
                        "is_impossible": True,
                        "plausible_answers": [{"text": "Rollo", "answer_start": 0}],
                    },
                ],
            }
        ],
    }
    kinds = squad_pairs([article], random.Random(0))
    assert {"qa-answer", "qa-unanswerable", "claim-echo", "claim-number"} <= set(kinds)
    for kind, pairs in kinds.items():
        positive = kind in ("qa-answer", "claim-statement", "claim-copy")
        assert all(p.label == float(positive) for p in pairs), kind
    (answer,) = [p for p in kinds["qa-answer"] if p.hypothesis.startswith("Who")]
    assert answer.premise == "Rollo founded the duchy in 911."


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/training is not here")
def test_training_data_never_includes_the_dev_split() -> None:
    dev = json.loads((DATA.parent / "benchmarks" / "squad2" / "dev-split.json").read_text())
    dev_sentences = {p["context"] for a in dev["data"] for p in a["paragraphs"]}
    pairs = load_pairs(Config(max_articles=30, nli=200))
    assert pairs
    assert not any(p.premise in c for p in pairs for c in dev_sentences if len(p.premise) > 40)


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/training is not here")
def test_training_smoke(tmp_path: Path) -> None:
    """A few hundred pairs for two steps: the script, export and manifest keep working."""
    cfg = Config(
        out=str(tmp_path / "model"),
        work=str(tmp_path / "work"),
        log=str(tmp_path / "work" / "train.log"),
        nli=100,
        qa=30,
        claims=20,
        max_articles=10,
        max_steps=2,
        batch_size=8,
        checkpoint_every=1,
    )
    summary = train(cfg)
    assert summary["steps"] == 2
    out = tmp_path / "model"
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["sha256"] == sha256_of(out / WEIGHTS)
    assert manifest["config"]["seed"] == cfg.seed
    events = [json.loads(x)["event"] for x in (tmp_path / "work" / "train.log").open()]
    assert events[0] == "data" and events[-1] == "done"
    (p,) = Support(out).score([(SENTENCE, "Russia sent four officers.")])
    assert 0.0 <= p <= 1.0
    # resuming from the checkpoint continues rather than starting over
    resumed = train(dataclasses.replace(cfg, max_steps=3, resume=True))
    assert resumed["steps"] == 3
    events = [json.loads(x)["event"] for x in (tmp_path / "work" / "train.log").open()]
    assert "resume" in events
