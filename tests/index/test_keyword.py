"""The BM25 keyword index: bm25s scoring, persistence and updates."""

from __future__ import annotations

import json
import os
import random
import time
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
    ours = BM25Index(tmp_path / "k")
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
    path = tmp_path / "k"
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


def test_damaged_manifest_or_segment_reads_as_unbuilt(tmp_path: Path) -> None:
    # version None is what makes the caller rebuild the index from Chroma
    path = tmp_path / "k"
    path.mkdir()
    (path / "MANIFEST.json").write_text("{not json")
    idx = BM25Index(path)
    assert len(idx) == 0 and idx.version is None
    (path / "MANIFEST.json").write_text('{"version": "v1", "segments": ["bad.npz"]}')
    (path / "bad.npz").write_bytes(b"not an npz file")
    idx = BM25Index(path)
    assert idx.version == "v1"
    assert len(idx) == 0 and idx.version is None


def segment_files(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.npz")}


def test_a_writer_spills_and_never_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from index.keyword import Tokens

    monkeypatch.setattr(keyword, "_COMPACT_AT", 100)
    rng = random.Random(7)
    items = corpus(rng, 300)
    folder = tmp_path / "k"
    writer = BM25Index(folder)
    tokens = Tokens(folder, limit=50)
    for cid, text in items:
        tokens.add(cid, text)
        assert len(tokens.ids) < 50  # held in memory: never more than the limit
    assert len(segment_files(folder)) == 6
    assert BM25Index(folder).version is None  # spilled, but no manifest lists them yet
    writer.update(tokens, [], "v1")
    assert writer._docs is None and not writer._built  # an ingest process stays light
    reader = BM25Index(folder)
    assert reader.version == "v1" and len(reader) == 300
    by_text = BM25Index(tmp_path / "t")
    by_text.update(items, [], "v1")
    for _ in range(20):
        query = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
        got, want = reader.search(query, 10), by_text.search(query, 10)
        assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-6)


def test_many_segments_merge_on_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keyword, "_COMPACT_AT", 3)
    folder = tmp_path / "k"
    writer = BM25Index(folder)
    for i in range(6):
        writer.update([(f"c{i}", f"river term{i}")], [f"c{i - 1}"] if i % 2 else [], f"v{i}")
    assert writer._docs is None and len(segment_files(folder)) == 9  # 6 adds, 3 removals
    orphan = folder / "0rphan.npz"
    orphan.write_bytes(b"left by a crashed ingest")
    reader = BM25Index(folder)
    assert sorted(reader.ids()) == ["c1", "c3", "c5"]
    listed = json.loads((folder / "MANIFEST.json").read_text())
    assert listed["version"] == "v5" and len(listed["segments"]) == 1
    # the merged segment and a fresh orphan stay; the merged-away ones are gone
    assert segment_files(folder) == {listed["segments"][0], orphan.name}
    old = time.time() - 2 * 86400
    os.utime(orphan, (old, old))
    writer.update([], ["c1"], "v6", replace=False)
    fresh = BM25Index(folder)
    assert sorted(fresh.ids()) == ["c3", "c5"]
    fresh.update([("c9", "lake")], [], "v7", replace=True)
    assert fresh.ids() == {"c9"} and [c for c, _ in fresh.search("lake", 3)] == ["c9"]
    assert not orphan.exists() and len(segment_files(folder)) == 1


def test_a_writer_next_to_a_searcher_loses_nothing(tmp_path: Path) -> None:
    # two processes on one folder: a server that searches, and a CLI ingest that only writes
    folder = tmp_path / "k"
    server = BM25Index(folder)
    server.update([("a", "red river")], [], "v1")
    assert [c for c, _ in server.search("river", 5)] == ["a"]
    cli = BM25Index(folder)
    cli.update([("b", "blue river")], [], "v2")
    server.update([("c", "green river")], [], "v3")  # the server has not seen "b" yet
    assert {c for c, _ in server.search("river", 5)} == {"a", "c"}
    assert BM25Index(folder).ids() == {"a", "b", "c"}


def test_tokenised_batches_index_the_same_as_texts(tmp_path: Path) -> None:
    from index.keyword import Tokens

    rng = random.Random(5)
    first, second = corpus(rng, 120), [(f"d{i}", t) for i, (_, t) in enumerate(corpus(rng, 80))]
    by_text = BM25Index(tmp_path / "a")
    by_text.update(first, (), "v1")
    by_text.update(second, ["c3", "c4"], "v2")
    by_tokens = BM25Index(tmp_path / "b")
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
    assert BM25Index(tmp_path / "b").search("river term3", 5) == by_tokens.search("river term3", 5)
