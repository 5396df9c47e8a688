"""The BM25 keyword index: bm25s scoring, persistence and updates."""

from __future__ import annotations

import random
from pathlib import Path

import bm25s
import pytest

from index import keyword
from index.keyword import BM25Index, tokenize

WORDS = [f"term{i}" for i in range(60)] + ["river", "rivers", "the", "of"]


def corpus(rng: random.Random, n: int) -> list[tuple[str, str]]:
    return [
        (f"c{i}", " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40)))) for i in range(n)
    ]


@pytest.mark.parametrize("block", [8192, 7])
def test_scores_match_stock_bm25s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    # A block of 7 documents makes the build run in 43 steps, some holding documents that are
    # only stopwords (no tokens), as a large corpus does.
    monkeypatch.setattr(keyword, "_BUILD_BLOCK_DOCS", block)
    rng = random.Random(3)
    items = [*corpus(rng, 300), ("stop1", "the of"), ("stop2", "of")]
    ours = BM25Index(tmp_path / "k.npz")
    ours.rebuild(items, "v1")
    stock = bm25s.BM25()
    stock.index([tokenize(text) for _, text in items], show_progress=False)
    for _ in range(40):
        query = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
        got = ours.search(query, 10)
        q = [t for t in dict.fromkeys(tokenize(query)) if t in stock.vocab_dict]
        if not q:
            assert got == []
            continue
        docs, scores = stock.retrieve([q], k=10, show_progress=False)
        expected = [
            (items[int(d)][0], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0
        ]
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], rel=1e-4)
        assert {c for c, _ in got} == {c for c, _ in expected} or len(got) == 10


def test_updates_persist_with_their_version(tmp_path: Path) -> None:
    path = tmp_path / "k.npz"
    idx = BM25Index(path)
    assert idx.search("anything", 5) == [] and idx.version is None
    idx.update([("a", "red river delta"), ("b", "blue mountain lake")], [], "v1")
    idx.update([("c", "green river valley")], ["a"], "v2")
    assert [cid for cid, _ in idx.search("river", 5)] == ["c"]
    again = BM25Index(path)
    assert again.version == "v2" and len(again) == 2
    assert [cid for cid, _ in again.search("rivers", 5)] == ["c"]  # plural folds to singular
    assert again.search("the of", 5) == []  # stopwords only
    assert again.search("unknownword", 5) == []


def test_damaged_file_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "k.npz"
    path.write_bytes(b"not an npz file")
    idx = BM25Index(path)
    assert len(idx) == 0 and idx.version is None


def test_tokenised_batches_index_the_same_as_texts(tmp_path: Path) -> None:
    from index.keyword import Tokens

    rng = random.Random(5)
    first, second = corpus(rng, 120), [(f"d{i}", t) for i, (_, t) in enumerate(corpus(rng, 80))]
    by_text = BM25Index(tmp_path / "a.npz")
    by_text.update(first, (), "v1")
    by_text.update(second, ["c3", "c4"], "v2")
    by_tokens = BM25Index(tmp_path / "b.npz")
    for items, remove, version in ((first, (), "v1"), (second, ["c3", "c4"], "v2")):
        batch = Tokens()
        for cid, text in items:
            batch.add(cid, text)
        by_tokens.update(batch, remove, version)
    assert len(by_tokens) == len(by_text) == 198
    for _ in range(30):
        query = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
        got, want = by_tokens.search(query, 10), by_text.search(query, 10)
        assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-6)
        assert {c for c, _ in got} == {c for c, _ in want} or len(got) == 10
    # and it persists like the text path
    assert BM25Index(tmp_path / "b.npz").search("river term3", 5) == by_tokens.search(
        "river term3", 5
    )
