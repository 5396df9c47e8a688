"""Service fixtures: real QA over a private corpus copy, served by uvicorn on loopback."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from index import Index
from index.embedding import Embedder
from service.app import create_app
from service.qa import QA
from service.settings import Settings
from tests.conftest import CORPUS, free_port
from tests.procs import ChromaServer

__all__ = ["QUESTION", "ChromaServer", "LiveServer", "service_settings"]

QUESTION = "Which valley near Damascus was attacked?"


class LiveServer:
    """A real uvicorn server for ``app`` on a free 127.0.0.1 port, in a background thread."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, name=f"uvicorn-{self.port}", daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 180
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn exited during startup")
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 180 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def service_settings(corpus: Path, data: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"corpus_dir": corpus, "data_dir": data, "rate_limit_per_minute": 0}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def svc_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings over a private, writable copy of corpus/ (the API tests upload and delete)."""
    root = tmp_path_factory.mktemp("service")
    shutil.copytree(CORPUS, root / "corpus")
    return service_settings(root / "corpus", root / "data")


@pytest.fixture(scope="session")
def qa(svc_settings: Settings, embedder: Embedder) -> QA:
    index = Index(svc_settings, embedder=embedder)
    index.ingest()
    return QA(svc_settings, index=index)


@pytest.fixture(scope="session")
def live(svc_settings: Settings, qa: QA) -> Iterator[LiveServer]:
    """The app with its UI, warmed up by its lifespan, as `groundqa serve` runs it."""
    with LiveServer(create_app(svc_settings, qa)) as server:
        yield server


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=120) as c:
        yield c
