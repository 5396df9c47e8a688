"""Shared fixtures: one embedding model per session, a default ingested index, a Chroma server."""

from __future__ import annotations

import os

# Every test runs offline and silent, whatever the caller's environment says.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from index import Index
from index.embedding import Embedder, get_embedder
from index.settings import IndexSettings

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The default embedding model (all-MiniLM-L6-v2), loaded once for the whole session."""
    emb = get_embedder(IndexSettings())
    emb.encode(["warm up"])
    return emb


@pytest.fixture(scope="session")
def corpus_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of corpus/ that tests may read but must not modify."""
    dest = tmp_path_factory.mktemp("corpus") / "corpus"
    shutil.copytree(CORPUS, dest)
    return dest


@pytest.fixture(scope="session")
def default_settings(tmp_path_factory: pytest.TempPathFactory, corpus_copy: Path) -> IndexSettings:
    """IndexSettings over the corpus copy with a session-private data dir (embedded Chroma)."""
    return IndexSettings(corpus_dir=corpus_copy, data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def default_index(default_settings: IndexSettings, embedder: Embedder) -> Index:
    """An Index over a copy of corpus/, already ingested; shared by the session: read only."""
    idx = Index(default_settings, embedder=embedder)
    idx.ingest()
    return idx


@pytest.fixture
def make_settings(tmp_path: Path) -> Iterator[object]:
    """Factory ``make_settings(corpus_dir, **overrides)``: IndexSettings with a fresh data dir."""
    counter = iter(range(1_000_000))

    def make(corpus_dir: Path | None = None, **overrides: object) -> IndexSettings:
        data = tmp_path / f"data{next(counter)}"
        values: dict[str, object] = {"corpus_dir": corpus_dir or CORPUS, "data_dir": data}
        values.update(overrides)
        return IndexSettings(**values)  # type: ignore[arg-type]

    yield make


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``chroma run`` server on 127.0.0.1 (its URL), killed at the end of the session."""
    from tests.procs import ChromaServer

    with ChromaServer(tmp_path_factory.mktemp("chroma-server")) as server:
        yield server.url


# One llama.cpp server for the whole session, shared by tests/llm and tests/service (imported
# last: tests.llama uses free_port from this module).
from tests.llama import llama_server  # noqa: E402, F401
