"""The embedded store and a real ``chroma run`` server behave the same; replicas stay in step."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from index import Index
from index.embedding import Embedder
from index.errors import IndexEmpty, IndexUnavailable
from index.settings import IndexSettings
from tests.conftest import ROOT, free_port

MakeSettings = Callable[..., IndexSettings]


@pytest.fixture(params=["embedded", "server"])
def backend_settings(
    request: pytest.FixtureRequest, make_settings: MakeSettings, corpus_copy: Path
) -> IndexSettings:
    """Settings over the default corpus on the embedded store or on the session's Chroma server."""
    if request.param == "server":
        url = request.getfixturevalue("chroma_server")
        return make_settings(corpus_copy, chroma_url=url, collection=f"t{uuid.uuid4().hex[:8]}")
    return make_settings(corpus_copy)


def test_ingest_and_search_on_each_backend(
    backend_settings: IndexSettings, embedder: Embedder
) -> None:
    idx = Index(backend_settings, embedder=embedder)
    idx.ping()
    with pytest.raises(IndexEmpty):
        idx.search("anything", 3)
    report = idx.ingest()
    assert len(report.added) == 2 and report.chunks_total == idx.count() > 0
    hits = idx.search("Which valley near Damascus was attacked?", 5)
    assert any("Wadi Barada" in h.chunk.text for h in hits[:3])
    for h in hits:
        assert idx.document_text(h.chunk.source)[h.chunk.start : h.chunk.end] == h.chunk.text
    # the name check's look-up: a substring anywhere in a document's chunks
    source = "000_e8b04126fa046505.txt"
    assert any("Aleppo" in t for t in idx.containing([source], ["Aleppo", "Nonexistentia"]))
    assert idx.containing([source], ["Canberra"]) == []
    assert Index(backend_settings, embedder=embedder).ingest().chunks_embedded == 0


def test_unreachable_server_is_index_unavailable(make_settings: MakeSettings) -> None:
    idx = Index(make_settings(chroma_url=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(IndexUnavailable):
        idx.ping()
    with pytest.raises(IndexUnavailable):
        idx.count()


def test_replica_keyword_index_catches_up(
    chroma_server: str, make_settings: MakeSettings, embedder: Embedder, tmp_path: Path
) -> None:
    """Replicas with their own data dirs (so their own BM25 files) share one Chroma server; when
    another process ingests, this one notices the version stamp and rebuilds its BM25 index from
    the documents Chroma holds."""
    corpus = tmp_path / "shared-corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Harbours\n\nThe harbour master logs every ship at dawn.")
    name = f"r{uuid.uuid4().hex[:8]}"
    writer = Index(
        make_settings(corpus, chroma_url=chroma_server, collection=name), embedder=embedder
    )
    reader = Index(
        make_settings(corpus, chroma_url=chroma_server, collection=name), embedder=embedder
    )
    reader.stamp_interval = 0.0  # check the stamp on every search
    writer.ingest()
    assert all(h.keyword_rank is None for h in reader.search("quokkabridge", 5))

    (corpus / "b.txt").write_text("Bridges\n\nThe quokkabridge spans the northern gorge.")
    # The change comes from another OS process, as from another replica.
    code = (
        "import sys; from pathlib import Path; from index import Index; "
        "from index.settings import IndexSettings; "
        "Index(IndexSettings(corpus_dir=Path(sys.argv[1]), data_dir=Path(sys.argv[2]), "
        "chroma_url=sys.argv[3], collection=sys.argv[4])).ingest()"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(corpus), str(tmp_path / "other"), chroma_server, name],
        check=True,
        cwd=ROOT,
    )
    hits = reader.search("quokkabridge", 5)
    assert hits and hits[0].chunk.source == "b.txt" and hits[0].keyword_rank == 0

    writer.remove_source("b.txt")
    assert all(h.chunk.source != "b.txt" for h in reader.search("quokkabridge", 5))


def test_replicas_catch_up_per_collection_without_cross_talk(
    chroma_server: str, make_settings: MakeSettings, embedder: Embedder, tmp_path: Path
) -> None:
    """Two collections on one Chroma server, read by a replica with its own data dir: another
    process's ingest into one moves only that collection's stamp, the replica's keyword index
    of that one catches up, and the other collection answers exactly as before."""
    from index.collections import Collections

    harbours = tmp_path / "harbours"
    harbours.mkdir()
    (harbours / "a.txt").write_text("Harbours\n\nThe harbour master logs every ship at dawn.")
    orchards = tmp_path / "orchards"
    orchards.mkdir()
    (orchards / "o.txt").write_text("Orchards\n\nThe orchard keeper grafts quokkapear trees.")
    tag = uuid.uuid4().hex[:6]
    one, two = f"h{tag}", f"o{tag}"
    replica = Collections(make_settings(harbours, chroma_url=chroma_server), embedder=embedder)
    replica.create(one)
    replica.create(two)
    replica.index(one).ingest(harbours)
    replica.index(two).ingest(orchards)
    for name in (one, two):
        replica.index(name).stamp_interval = 0.0  # check the stamp on every search
    other_before = [(h.chunk.id, h.score) for h in replica.index(two).search("quokkapear", 5)]
    stamp_two = replica.info(two).version
    assert all(h.keyword_rank is None for h in replica.index(one).search("quokkabridge", 5))

    (harbours / "b.txt").write_text("Bridges\n\nThe quokkabridge spans the northern gorge.")
    code = (
        "import sys; from pathlib import Path; from index import Index; "
        "from index.settings import IndexSettings; "
        "Index(IndexSettings(corpus_dir=Path(sys.argv[1]), data_dir=Path(sys.argv[2]), "
        "chroma_url=sys.argv[3], collection=sys.argv[4])).ingest()"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(harbours), str(tmp_path / "other"), chroma_server, one],
        check=True,
        cwd=ROOT,
    )
    hits = replica.index(one).search("quokkabridge", 5)
    assert hits and hits[0].chunk.source == "b.txt" and hits[0].keyword_rank == 0
    # The other collection: same stamp, same answers, none of the new document.
    assert replica.info(two).version == stamp_two
    after = replica.index(two).search("quokkapear quokkabridge", 5)
    assert {h.chunk.source for h in after} == {"o.txt"}
    assert [(h.chunk.id, h.score) for h in replica.index(two).search("quokkapear", 5)] == (
        other_before
    )
    assert {s.source for s in replica.index(one).sources()} == {"a.txt", "b.txt"}
