"""An ingest killed with SIGKILL midway leaves nothing that the next run does not repair."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings

from index import Index
from index.embedding import Embedder
from index.sentences import unpack
from index.settings import IndexSettings
from tests.conftest import ROOT

MakeSettings = Callable[..., IndexSettings]

WORDS = [
    "river",
    "mountain",
    "city",
    "harbour",
    "engine",
    "library",
    "orchard",
    "council",
    "treaty",
    "market",
    "station",
    "bridge",
    "canal",
    "festival",
    "museum",
    "railway",
    "glacier",
    "senate",
    "theatre",
    "airport",
    "desert",
    "forest",
    "village",
    "castle",
]

DRIVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import index.core
    from index import Index
    from index.settings import IndexSettings

    index.core.GROUP_CHUNKS = 8  # many small write groups, so a kill lands between them
    settings = IndexSettings(corpus_dir=Path(sys.argv[1]), data_dir=Path(sys.argv[2]))
    if len(sys.argv) > 3:
        settings = settings.model_copy(update={"collection": sys.argv[3]})

    def progress(done, total):
        print(done, flush=True)

    Index(settings).ingest(progress=progress)
    print("finished", flush=True)
    """
)


def state(settings: IndexSettings, embedder: Embedder) -> tuple[object, ...]:
    """Everything observable about an index: chunk ids and metadata, manifest, search results."""
    client = chromadb.PersistentClient(
        path=str(settings.data_dir / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    registry = client.get_collection(f"{settings.collection}-registry")
    active = registry.metadata["active"]
    got = client.get_collection(active).get(include=["metadatas", "documents"])

    def observable(meta: dict[str, object]) -> list[tuple[str, object]]:
        # Stored sentence vectors come from batched forward passes, whose float rounding
        # depends on what else was in the batch: their spans are compared here, the vectors
        # by cosine against a clean build (sentence_vectors).
        out = sorted((k, v) for k, v in meta.items() if k != "sentences")
        sent = unpack(meta.get("sentences"))
        assert sent is not None
        out.append(("sentences", sent.spans))
        return out

    chunks = sorted(
        zip(got["ids"], got["documents"], [observable(m) for m in got["metadatas"]], strict=True)
    )
    manifest = sorted(sorted(m.items()) for m in registry.get(include=["metadatas"])["metadatas"])
    idx = Index(settings, embedder=embedder)
    searches = [
        [(h.chunk.id, round(h.score, 6), h.keyword_rank) for h in idx.search(q, 8)]
        for q in ("river council treaty", "glacier museum", "harbour 17")
    ]
    return chunks, manifest, searches, idx.sources()


def sentence_vectors(settings: IndexSettings) -> dict[str, np.ndarray]:
    client = chromadb.PersistentClient(
        path=str(settings.data_dir / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    active = client.get_collection(f"{settings.collection}-registry").metadata["active"]
    got = client.get_collection(active).get(include=["metadatas"])
    out = {}
    for cid, meta in zip(got["ids"], got["metadatas"], strict=True):
        sent = unpack(meta.get("sentences"))
        assert sent is not None
        out[cid] = sent.vectors
    return out


def _random_corpus(folder: Path, seed: int, n: int, prefix: str = "doc") -> Path:
    rng = random.Random(seed)
    folder.mkdir()
    for i in range(n):
        sentences = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + f" {i}."
            for _ in range(rng.randint(4, 12))
        ]
        (folder / f"{prefix}{i:03d}.txt").write_text(f"Document {i}\n\n" + " ".join(sentences))
    return folder


def _kill_midway(corpus: Path, settings: IndexSettings, *collection: str) -> int:
    """Run an ingest in another process and SIGKILL it once 50 files are done."""
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(corpus), str(settings.data_dir), *collection],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    killed_at = None
    for line in proc.stdout:
        if line.strip().isdigit() and int(line) >= 50:
            killed_at = int(line)
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert killed_at is not None, "the ingest finished before it could be interrupted"
    assert proc.returncode == -signal.SIGKILL
    return killed_at


def test_kill_9_in_one_collection_leaves_the_other_untouched(
    tmp_path: Path, make_settings: MakeSettings, embedder: Embedder
) -> None:
    """Two collections in one data dir: killing an ingest into one changes nothing in the
    other, and the rerun equals a clean build of the first, with no document of either in the
    other."""
    alpha = _random_corpus(tmp_path / "alpha", 5, 120, "alpha")
    beta = _random_corpus(tmp_path / "beta", 9, 40, "beta")
    shared = make_settings(alpha)
    beta_settings = shared.model_copy(update={"collection": "beta", "corpus_dir": beta})
    alpha_settings = shared.model_copy(update={"collection": "alpha"})
    Index(beta_settings, embedder=embedder).ingest()
    beta_before = state(beta_settings, embedder)

    _kill_midway(alpha, shared, "alpha")
    assert state(beta_settings, embedder) == beta_before

    recovered = Index(alpha_settings, embedder=embedder).ingest()
    assert 0 < recovered.chunks_embedded < recovered.chunks_total
    clean = make_settings(alpha).model_copy(update={"collection": "alpha"})
    Index(clean, embedder=embedder).ingest()
    assert state(alpha_settings, embedder) == state(clean, embedder)
    a, b = sentence_vectors(alpha_settings), sentence_vectors(clean)
    assert a.keys() == b.keys()
    assert min(float(np.min(np.sum(a[k] * b[k], axis=1))) for k in a) > 0.99
    assert state(beta_settings, embedder) == beta_before
    alpha_sources = {s.source for s in Index(alpha_settings, embedder=embedder).sources()}
    beta_sources = {s.source for s in Index(beta_settings, embedder=embedder).sources()}
    assert alpha_sources == {p.name for p in alpha.iterdir()}
    assert beta_sources == {p.name for p in beta.iterdir()}


def test_kill_9_midway_then_rerun_equals_clean_build(
    tmp_path: Path, make_settings: MakeSettings, embedder: Embedder
) -> None:
    corpus = _random_corpus(tmp_path / "corpus", 5, 120)

    interrupted = make_settings(corpus)
    _kill_midway(corpus, interrupted)

    recovered = Index(interrupted, embedder=embedder).ingest()
    assert 0 < recovered.chunks_embedded < recovered.chunks_total  # earlier work was kept

    clean = make_settings(corpus)
    Index(clean, embedder=embedder).ingest()
    assert state(interrupted, embedder) == state(clean, embedder)
    a, b = sentence_vectors(interrupted), sentence_vectors(clean)
    assert a.keys() == b.keys()
    assert min(float(np.min(np.sum(a[k] * b[k], axis=1))) for k in a) > 0.99
