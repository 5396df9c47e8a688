"""Collections: several corpora in one Chroma, kept apart; scoped search inside one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings

from index import Index
from index.collections import CollectionNotFound, Collections, Scope, check_name
from index.embedding import Embedder
from index.errors import ConfigError, NotFound
from index.settings import IndexSettings
from tests.conftest import CORPUS

MakeSettings = Callable[..., IndexSettings]


def _corpus(root: Path, name: str, docs: dict[str, str]) -> Path:
    folder = root / name
    folder.mkdir()
    for file, text in docs.items():
        (folder / file).write_text(text, encoding="utf-8")
    return folder


ANIMALS = {
    "otters.txt": "Otters\n\nSea otters float on their backs and crack shellfish on stones.",
    "owls.txt": "Owls\n\nBarn owls hunt voles at night and nest in old barns.",
}
ENGINES = {
    "diesel.txt": "Diesel engines\n\nA diesel engine ignites its fuel by compression alone.",
    "turbines.txt": "Turbines\n\nA steam turbine turns heat into rotation with rows of blades.",
}


def _chroma(settings: IndexSettings) -> dict[str, object]:
    """Every Chroma collection's name -> (metadata, sorted records): the whole store's state."""
    client = chromadb.PersistentClient(
        path=str(settings.data_dir / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    out: dict[str, object] = {}
    for c in client.list_collections():
        got = c.get(include=["documents", "metadatas", "embeddings"])
        rows = sorted(
            (i, d, sorted((m or {}).items()), [round(float(x), 6) for x in e])
            for i, d, m, e in zip(
                got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True
            )
        )
        out[c.name] = (sorted((c.metadata or {}).items()), rows)
    return out


def test_names_are_validated_for_chroma() -> None:
    assert check_name("hr-policies") == "hr-policies"
    for bad in ("ab", "x" * 43, "-lead", "trail.", "a..b", "has space", "10.0.0.1", "ünï"):
        with pytest.raises(ConfigError):
            check_name(bad)


def test_collections_keep_their_documents_apart_and_delete_exactly_one(
    tmp_path: Path, make_settings: MakeSettings, embedder: Embedder
) -> None:
    settings = make_settings(_corpus(tmp_path, "default", ANIMALS))
    cols = Collections(settings, embedder=embedder)
    assert cols.names() == ["groundqa"]  # the default is listed before its first ingest
    assert cols.create("engines") and not cols.create("engines")
    # A name that extends another's is the trap of prefix matching: it must survive below.
    assert cols.create("engines-v2")
    assert cols.names() == ["groundqa", "engines", "engines-v2"]
    cols.index().ingest()
    cols.index("engines").ingest(_corpus(tmp_path, "engines", ENGINES))
    cols.index("engines-v2").ingest(_corpus(tmp_path, "v2", {"diesel.txt": ENGINES["diesel.txt"]}))

    assert [s.source for s in cols.index().sources()] == ["otters.txt", "owls.txt"]
    assert [s.source for s in cols.index("engines").sources()] == ["diesel.txt", "turbines.txt"]
    # Each collection answers only from itself, whatever the query.
    for name, own in (("groundqa", ANIMALS), ("engines", ENGINES)):
        for q in ("diesel engine compression", "owls hunt at night", "otters shellfish"):
            assert {h.chunk.source for h in cols.index(name).search(q, 5)} <= set(own)
    with pytest.raises(CollectionNotFound):
        cols.index("nosuchcollection")

    before = {k: v for k, v in _chroma(settings).items() if not k.startswith("engines-")}
    before_v2 = {k: v for k, v in _chroma(settings).items() if k.startswith("engines-v2")}
    keyword_files = sorted(p.name for p in (settings.data_dir / "keyword").iterdir())
    gone = cols.delete("engines")
    assert gone.chunks == 2 and len(gone.chroma_collections) == 2
    with pytest.raises(ConfigError):
        cols.delete("groundqa")  # the default collection stays
    after = _chroma(settings)
    assert not [k for k in after if k.startswith("engines-") and not k.startswith("engines-v2")]
    # Everything else is exactly as it was, the look-alike name included.
    assert {k: v for k, v in after.items() if not k.startswith("engines")} == {
        k: v for k, v in before.items() if not k.startswith("engines")
    }
    assert {k: v for k, v in after.items() if k.startswith("engines-v2")} == before_v2
    left = sorted(p.name for p in (settings.data_dir / "keyword").iterdir())
    assert len(left) == len(keyword_files) - 1
    assert all(not (n.startswith("engines-") and not n.startswith("engines-v2")) for n in left)
    assert cols.names() == ["groundqa", "engines-v2"]
    with pytest.raises(CollectionNotFound):
        cols.index("engines")
    # A fresh process (new Collections) agrees.
    assert Collections(settings, embedder=embedder).names() == ["groundqa", "engines-v2"]
    assert [h.chunk.source for h in cols.index("engines-v2").search("diesel", 3)] == ["diesel.txt"]


def test_an_existing_data_dir_is_its_default_collection(
    tmp_path: Path, make_settings: MakeSettings, embedder: Embedder
) -> None:
    settings = make_settings(_corpus(tmp_path, "default", ANIMALS))
    Index(settings, embedder=embedder).ingest()  # written as before collections existed
    cols = Collections(settings, embedder=embedder)
    assert cols.names() == ["groundqa"]
    assert [s.source for s in cols.sources()] == ["otters.txt", "owls.txt"]


def test_scope_resolves_sources_ids_and_globs(default_index: Index) -> None:
    infos = default_index.sources()
    a, b = infos[0], infos[1]
    assert Scope(documents=(a.source,)).resolve(infos) == [a.source]
    assert Scope(documents=(b.id,)).resolve(infos) == [b.source]
    assert Scope(glob="000_*").resolve(infos) == [s.source for s in infos if s.source[:4] == "000_"]
    assert Scope(glob=a.title).resolve(infos) == [a.source]  # a glob also matches titles
    assert Scope(glob="nothing*").resolve(infos) == []
    with pytest.raises(NotFound):
        Scope(documents=("missing.txt",)).resolve(infos)


def test_scoped_search_ranks_inside_the_scope_and_keeps_its_top_k(
    tmp_path: Path, make_settings: MakeSettings, embedder: Embedder
) -> None:
    # 30 documents about rivers and one long one about bread: an unscoped river query never
    # reaches the bread document's chunks, a scoped one must still return k of them.
    docs = {
        f"river{i:02d}.txt": f"River {i}\n\nThe river {i} floods its valley every spring "
        f"and carries silt to the delta near town {i}."
        for i in range(30)
    }
    docs["bread.txt"] = "Bread\n\n" + " ".join(
        f"Step {i}: the baker folds the dough, lets it rise by the river and bakes loaf {i}."
        for i in range(60)
    )
    settings = make_settings(_corpus(tmp_path, "c", docs), chunk_size=200, chunk_overlap=20)
    index = Index(settings, embedder=embedder)
    index.ingest()
    query = "river floods valley spring silt delta"
    unscoped = index.search(query, 5)
    assert all(h.chunk.source != "bread.txt" for h in index.search(query, 20))
    scoped = index.search(query, 5, sources=["bread.txt"])
    assert len(scoped) == 5 and {h.chunk.source for h in scoped} == {"bread.txt"}
    # Both sides ranked inside the scope: dense ranks and BM25 ranks, not just a filter after.
    assert all(h.dense_rank is not None for h in scoped)
    assert any(h.keyword_rank is not None for h in scoped)
    assert index.search(query, 5, sources=[]) == []
    two = index.search(query, 5, sources=["river03.txt", "river07.txt"])
    assert {h.chunk.source for h in two} == {"river03.txt", "river07.txt"}
    assert [h.chunk.id for h in index.search(query, 5)] == [h.chunk.id for h in unscoped]


def test_keyword_search_with_allowed_ids_ranks_only_those(default_index: Index) -> None:
    pointer = default_index._current_pointer(fresh=True)
    keyword = default_index._keyword(pointer.active or "", pointer.version)
    top = keyword.search("Iran airbase Russia", 50)
    assert len(top) > 3
    allowed = {cid for cid, _ in top[-3:]}
    got = keyword.search("Iran airbase Russia", 10, allowed=allowed)
    assert {cid for cid, _ in got} == allowed
    assert keyword.search("Iran airbase Russia", 10, allowed=set()) == []


def test_corpus_folder_of_a_collection_is_its_own(make_settings: MakeSettings) -> None:
    settings = make_settings(CORPUS)
    cols = Collections(settings)
    assert cols.settings_for("groundqa").corpus_dir == CORPUS
    other = cols.settings_for("hr-policies")
    assert other.collection == "hr-policies"
    assert other.corpus_dir == settings.data_dir / "corpora" / "hr-policies"
