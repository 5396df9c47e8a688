"""Value types shared by ingestion, retrieval and everything above them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Chunk:
    """A span of one source document: ``text == document_text[start:end]``."""

    id: str
    text: str
    source: str  # path relative to the corpus root, with forward slashes
    title: str
    start: int
    end: int
    doc_hash: str
    page: int | None = None
    # The chunk's sentences as stored at ingest (``index.sentences.pack``); None when the
    # index predates them, and then answering splits and embeds the chunk itself.
    sentences: str | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved chunk and how it ranked (fused score; ranks are 0-based, None when absent)."""

    chunk: Chunk
    score: float
    dense_score: float | None = None
    keyword_score: float | None = None
    dense_rank: int | None = None
    keyword_rank: int | None = None


@dataclass(frozen=True, slots=True)
class SourceInfo:
    id: str  # stable: derived from the source path, used by DELETE /v1/documents/{id}
    source: str
    title: str
    doc_hash: str
    chunks: int
    pages: int | None = None


@dataclass(slots=True)
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # source -> one-line reason
    chunks_embedded: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    rebuilt: bool = False  # True when a model switch rebuilt the collection
