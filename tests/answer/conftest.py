"""A session-wide QA over the default corpus (shares the session's embedder and index)."""

from __future__ import annotations

from pathlib import Path

import pytest

from index import Index
from index.settings import IndexSettings
from service.qa import QA
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def qa_settings(default_settings: IndexSettings) -> Settings:
    return Settings(corpus_dir=default_settings.corpus_dir, data_dir=default_settings.data_dir)


@pytest.fixture(scope="session")
def qa(qa_settings: Settings, default_index: Index) -> QA:
    engine = QA(qa_settings, index=default_index)
    engine.warmup()
    return engine


def source_text(source: str) -> str:
    """The source file as the user has it on disk (citations must slice it exactly)."""
    return (ROOT / "corpus" / source).read_text(encoding="utf-8")
