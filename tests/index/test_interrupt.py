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
        # by cosine in sentence_vectors_agree.
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


def test_kill_9_midway_then_rerun_equals_clean_build(
    tmp_path: Path, make_settings: MakeSettings, embedder: Embedder
) -> None:
    rng = random.Random(5)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(120):
        sentences = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + f" {i}."
            for _ in range(rng.randint(4, 12))
        ]
        (corpus / f"doc{i:03d}.txt").write_text(f"Document {i}\n\n" + " ".join(sentences))

    interrupted = make_settings(corpus)
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(corpus), str(interrupted.data_dir)],
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

    recovered = Index(interrupted, embedder=embedder).ingest()
    assert 0 < recovered.chunks_embedded < recovered.chunks_total  # earlier work was kept

    clean = make_settings(corpus)
    Index(clean, embedder=embedder).ingest()
    assert state(interrupted, embedder) == state(clean, embedder)
    a, b = sentence_vectors(interrupted), sentence_vectors(clean)
    assert a.keys() == b.keys()
    assert min(float(np.min(np.sum(a[k] * b[k], axis=1))) for k in a) > 0.99
