"""Switching the embedding model rebuilds into a fresh collection that serves only when complete."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings as ChromaSettings

import index.core
from index import Index
from index.embedding import Embedder, get_embedder, model_path
from index.errors import IndexUnavailable, ModelUnavailable
from index.sentences import Sentences
from index.settings import IndexSettings

MakeSettings = Callable[..., IndexSettings]


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A second, real sentence-transformers model: MiniLM plus a fixed 384->96 projection."""
    import torch
    from sentence_transformers import SentenceTransformer, models

    torch.manual_seed(7)
    base = SentenceTransformer(str(embedder.path), device="cpu")
    dense = models.Dense(in_features=384, out_features=96, activation_function=torch.nn.Identity())
    model = SentenceTransformer(modules=[*base, dense], device="cpu")
    out = tmp_path_factory.mktemp("models") / "minilm-96"
    model.save(str(out))
    return out


def test_wrong_model_path_is_model_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="sentence-transformers model directory"):
        model_path(str(tmp_path / "missing-model"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{not json")
    settings = IndexSettings(embedding_model=str(tmp_path / "junk"), data_dir=tmp_path / "d")
    with pytest.raises(ModelUnavailable, match="cannot load"):
        get_embedder(settings).encode(["x"])


def test_embedder_is_shared_and_normalized(embedder: Embedder) -> None:
    assert get_embedder(IndexSettings()) is embedder
    vectors = embedder.encode(["one", "two words", "three words here"])
    assert vectors.shape == (3, embedder.dimension) == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def physical_collections(settings: IndexSettings) -> set[str]:
    client = chromadb.PersistentClient(
        path=str(settings.data_dir / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    return {c.name for c in client.list_collections()} - {f"{settings.collection}-registry"}


def test_model_switch_keeps_old_index_serving_until_rebuild_completes(
    tmp_path: Path,
    make_settings: MakeSettings,
    embedder: Embedder,
    small_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    topics = ["volcano", "glacier", "desert", "harbour", "orchard", "canyon"]
    for i, topic in enumerate(topics):
        body = " ".join(f"The {topic} survey {j} recorded {topic} data." for j in range(25))
        (corpus / f"{i}.txt").write_text(f"{topic.title()}\n\n{body}")
    settings_a = make_settings(corpus)
    settings_b = settings_a.model_copy(update={"embedding_model": str(small_model_dir)})
    old = Index(settings_a, embedder=embedder)
    old.ingest()
    old_names = physical_collections(settings_a)
    assert len(old_names) == 1

    new = Index(settings_b)
    assert new.embedder.dimension == 96
    # The new model cannot query the 384-d collection: a clear error, not a dimension mismatch.
    with pytest.raises(IndexUnavailable, match="re-run `groundqa ingest`"):
        new.search("volcano survey", 3)

    # Fail the rebuild midway: small write groups, and the second encode call dies.
    monkeypatch.setattr(index.core, "GROUP_CHUNKS", 4)
    real_encode = new.embedder.encode_chunks
    calls = {"n": 0}

    def failing(texts: list[str]) -> tuple[np.ndarray, list[Sentences]]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash while embedding")
        return real_encode(texts)

    monkeypatch.setattr(new.embedder, "encode_chunks", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        new.ingest()
    monkeypatch.undo()

    # The old index still serves, with the old model, as before.
    hits = old.search("volcano survey", 3)
    assert hits and hits[0].chunk.source == "0.txt"
    assert Index(settings_a, embedder=embedder).count() == old.count()
    with pytest.raises(IndexUnavailable):
        Index(settings_b).search("volcano survey", 3)
    assert len(physical_collections(settings_a)) == 2  # the partial rebuild sits beside it

    # Completing the rebuild embeds only what the failed attempt did not finish, then switches.
    report = Index(settings_b).ingest()
    assert report.rebuilt
    assert 0 < report.chunks_embedded < report.chunks_total
    assert physical_collections(settings_a).isdisjoint(old_names)
    switched = Index(settings_b)
    hits = switched.search("glacier survey", 3)
    assert hits and hits[0].chunk.source == "1.txt"
    with pytest.raises(IndexUnavailable, match="different embedding model"):
        Index(settings_a, embedder=embedder).search("volcano survey", 3)
