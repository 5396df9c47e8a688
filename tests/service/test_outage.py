"""Chroma going away: 503 with Retry-After (never a 200 with an error inside), probes tell."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from index import Index
from index.embedding import Embedder
from service.app import create_app
from service.qa import QA
from tests.conftest import CORPUS, free_port
from tests.service.conftest import QUESTION, ChromaServer, LiveServer, service_settings


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def assert_unavailable(r: httpx.Response, type_: str = "index_unavailable") -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) > 0
    assert r.json()["error"]["type"] == type_
    assert r.json()["error"]["request_id"] == r.headers["x-request-id"]


def test_chroma_killed_while_serving(
    tmp_path: Path, chroma: ChromaServer, embedder: Embedder
) -> None:
    shutil.copytree(CORPUS, tmp_path / "corpus")
    settings = service_settings(
        tmp_path / "corpus", tmp_path / "data", chroma_url=chroma.url, ui=False
    )
    index = Index(settings, embedder=embedder)
    index.ingest()
    with LiveServer(create_app(settings, QA(settings, index=index))) as server:
        c = httpx.Client(base_url=server.url, timeout=120)
        assert c.get("/readyz").status_code == 200
        assert c.post("/v1/ask", json={"question": QUESTION}).status_code == 200

        chroma.stop()

        assert_unavailable(c.post("/v1/ask", json={"question": QUESTION}))
        assert_unavailable(c.post("/v1/ask/stream", json={"question": QUESTION}))
        chat = {"messages": [{"role": "user", "content": QUESTION}]}
        assert_unavailable(c.post("/v1/chat/completions", json=chat))
        assert_unavailable(c.post("/v1/chat/completions", json={**chat, "stream": True}))
        assert_unavailable(c.get("/v1/documents"))
        ready = c.get("/readyz")
        assert ready.status_code == 503 and int(ready.headers["retry-after"]) > 0
        assert ready.json()["checks"]["chroma"] == "unreachable"
        assert ready.json()["error"]["type"] == "not_ready"
        assert c.get("/healthz").status_code == 200
        assert c.get("/metrics").status_code == 200
        c.close()


def test_chroma_down_from_the_start(tmp_path: Path, embedder: Embedder) -> None:
    settings = service_settings(
        CORPUS, tmp_path / "data", chroma_url=f"http://127.0.0.1:{free_port()}", ui=False
    )
    qa = QA(settings, index=Index(settings, embedder=embedder))
    # The app still starts (the warm-up failure is logged) and says why it is not ready.
    with LiveServer(create_app(settings, qa)) as server, httpx.Client(base_url=server.url) as c:
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 503
        assert "chroma" in ready.json()["error"]["message"]
        assert_unavailable(c.post("/v1/ask", json={"question": QUESTION}))


def test_empty_index_is_503(tmp_path: Path, embedder: Embedder) -> None:
    (tmp_path / "corpus").mkdir()
    settings = service_settings(tmp_path / "corpus", tmp_path / "data", ui=False)
    qa = QA(settings, index=Index(settings, embedder=embedder))
    with (
        LiveServer(create_app(settings, qa, warmup=False)) as server,
        httpx.Client(base_url=server.url) as c,
    ):
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "empty" in ready.json()["error"]["message"]
        r = c.post("/v1/ask", json={"question": QUESTION})
        assert_unavailable(r, "index_empty")
