"""A physical collection split into shards (index.shards) against one unsplit collection."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings

from index import Index
from index.collections import Collections
from index.embedding import Embedder
from index.settings import IndexSettings
from index.store import is_shard, shard_number
from tests.conftest import CORPUS

MakeSettings = Callable[..., IndexSettings]
QUESTIONS = [
    "What did Iran do?",
    "Who announced the withdrawal?",
    "Which city was evacuated?",
    "What happened to oil prices?",
]


def chroma_names(settings: IndexSettings) -> list[str]:
    client = chromadb.PersistentClient(
        path=str(settings.data_dir / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    return sorted(c.name for c in client.list_collections())


def shard_sizes(settings: IndexSettings, source: str | None = None) -> dict[str, list[str]]:
    """Each shard's chunk ids (of ``source`` only, when given), read straight from Chroma."""
    client = chromadb.PersistentClient(
        path=str(settings.data_dir / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    active = client.get_collection(f"{settings.collection}-registry").metadata["active"]
    where = None if source is None else {"source": source}
    return {
        c.name: client.get_collection(c.name).get(where=where, include=[])["ids"]
        for c in client.list_collections()
        if shard_number(active, c.name) is not None
    }


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    shutil.copytree(CORPUS, root)
    return root


def test_shard_names() -> None:
    assert shard_number("c-0123456789ab", "c-0123456789ab") == 0
    assert shard_number("c-0123456789ab", "c-0123456789ab.s12") == 12
    assert shard_number("c-0123456789ab", "c-0123456789ab.s0") is None
    assert shard_number("c-0123456789ab", "c-0123456789abc") is None
    assert shard_number("c-0123456789ab", "c-0123456789ab-registry") is None
    assert is_shard("c-0123456789ab.s3") and not is_shard("c-0123456789ab")


def test_sharded_index_searches_like_one_collection(
    make_settings: MakeSettings, corpus: Path, embedder: Embedder
) -> None:
    whole = Index(make_settings(corpus, shard_chunks=0), embedder=embedder)
    split_settings = make_settings(corpus, shard_chunks=7)
    split = Index(split_settings, embedder=embedder, sole_writer=True)
    a, b = whole.ingest(), split.ingest()
    assert a.chunks_total == b.chunks_total == split.count() > 14
    sizes = shard_sizes(split_settings)
    # every shard full but the last, and no chunk in two shards
    assert len(sizes) == -(-b.chunks_total // 7)
    assert sorted(len(v) for v in sizes.values())[1:] == [7] * (len(sizes) - 1)
    everything = [cid for ids in sizes.values() for cid in ids]
    assert len(everything) == len(set(everything)) == b.chunks_total
    reader = Index(split_settings, embedder=embedder)  # a fresh process's view
    for q in QUESTIONS:
        want = [(h.chunk.id, h.dense_rank, h.keyword_rank) for h in whole.search(q, 5)]
        assert [(h.chunk.id, h.dense_rank, h.keyword_rank) for h in reader.search(q, 5)] == want
        source = whole.search(q, 1)[0].chunk.source
        scoped = [h.chunk.id for h in reader.search(q, 5, sources={source})]
        assert scoped == [h.chunk.id for h in whole.search(q, 5, sources={source})]
    assert reader.containing({source}, ["Iran"]) == whole.containing({source}, ["Iran"])


def test_edits_and_removals_reach_every_shard(
    make_settings: MakeSettings, corpus: Path, embedder: Embedder
) -> None:
    settings = make_settings(corpus, shard_chunks=5)
    index = Index(settings, embedder=embedder, sole_writer=True)
    first = index.ingest()
    shards_before = len(shard_sizes(settings))
    victim = sorted(corpus.glob("*.txt"))[0]
    text = victim.read_text(encoding="utf-8")
    before = {cid for ids in shard_sizes(settings, victim.name).values() for cid in ids}
    # An ingest killed after writing the victim's chunks but before marking it done: the rerun
    # writes the same ids again, each into the shard that holds it.
    client = chromadb.PersistentClient(
        path=str(settings.data_dir / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    registry = client.get_collection(f"{settings.collection}-registry")
    got = registry.get(where={"source": victim.name}, include=["metadatas"])
    registry.update(ids=got["ids"], metadatas=[{**m, "state": "pending"} for m in got["metadatas"]])
    again = index.ingest()
    assert again.added == [victim.name] and again.chunks_embedded == len(before)
    sizes = shard_sizes(settings)
    everything = [cid for ids in sizes.values() for cid in ids]
    assert len(everything) == len(set(everything)) == first.chunks_total
    assert {cid for ids in shard_sizes(settings, victim.name).values() for cid in ids} == before
    # an edit: every chunk id changes (ids hash the document); the old ones go from every shard
    victim.write_text(text + "\n\nAn added closing line about zebras.\n", encoding="utf-8")
    report = index.ingest()
    assert report.updated == [victim.name]
    sizes = shard_sizes(settings)
    everything = [cid for ids in sizes.values() for cid in ids]
    assert len(everything) == len(set(everything)) == report.chunks_total == index.count()
    assert not before & set(everything)
    assert len(sizes) >= shards_before
    hit = Index(settings, embedder=embedder).search("zebras", 1)[0]
    assert hit.chunk.source == victim.name and "zebras" in hit.chunk.text
    removed = index.remove_source(victim.name)
    assert removed > 0 and index.count() == report.chunks_total - removed
    after = Index(settings, embedder=embedder).search("zebras", 5)
    assert after and not any(h.chunk.source == victim.name for h in after)


def test_a_searching_process_sees_a_shard_opened_elsewhere(
    make_settings: MakeSettings, corpus: Path, embedder: Embedder
) -> None:
    settings = make_settings(corpus, shard_chunks=8)
    Index(settings, embedder=embedder).ingest()
    server = Index(settings, embedder=embedder)
    server.stamp_interval = 0.0
    assert server.search("glaciers calving", 3)  # the shard list is now read and kept
    before = len(shard_sizes(settings))
    (corpus / "glacier.md").write_text(
        "# Glacier notes\n\n"
        + " ".join(f"Glacier number {i} calves icebergs into the fjord." for i in range(200))
    )
    Index(settings, embedder=embedder).ingest()
    assert len(shard_sizes(settings)) > before + 1
    fresh = [h.chunk.id for h in Index(settings, embedder=embedder).search("glaciers calving", 8)]
    assert [h.chunk.id for h in server.search("glaciers calving", 8)] == fresh


def test_deleting_a_collection_drops_its_shards(
    make_settings: MakeSettings, corpus: Path, embedder: Embedder
) -> None:
    settings = make_settings(corpus, shard_chunks=6)
    cols = Collections(settings)
    cols.create("notes")
    notes = cols.index("notes")
    notes._embedder = embedder
    notes.ingest(corpus)
    names = chroma_names(settings)
    assert sum(1 for n in names if n.startswith("notes-") and is_shard(n)) >= 2
    gone = cols.delete("notes")
    assert not [n for n in chroma_names(settings) if n.startswith("notes-")]
    assert any(is_shard(n) for n in gone.chroma_collections)
