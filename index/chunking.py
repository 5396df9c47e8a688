"""Sentence-aware recursive splitting with overlap; every chunk knows its exact offsets."""

from __future__ import annotations

import hashlib

from langchain_text_splitters import RecursiveCharacterTextSplitter

from index.loaders import Document
from index.types import Chunk

# Paragraphs, then lines, then sentence ends, then clauses, then words: a chunk breaks at the
# coarsest boundary that keeps it under the size (chars, ~4 per token for MiniLM's 256 tokens).
SEPARATORS = ["\n\n", "\n", ". ", "! ", "? ", "; ", ": ", ", ", " ", ""]


def chunk_id(source: str, doc_hash: str, start: int, end: int) -> str:
    """Stable across runs and machines: the same file content always yields the same ids."""
    return hashlib.sha256(f"{source}\0{doc_hash}\0{start}\0{end}".encode()).hexdigest()[:32]


class Chunker:
    def __init__(self, chunk_size: int = 800, chunk_overlap: int = 120) -> None:
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            separators=SEPARATORS,
            keep_separator="end",
            strip_whitespace=True,
        )

    def spans(self, text: str) -> list[tuple[int, int]]:
        """``(start, end)`` of each chunk, such that ``text[start:end]`` is the chunk's text."""
        spans: list[tuple[int, int]] = []
        cursor = 0
        for piece in self._splitter.split_text(text):
            if not piece:
                continue
            # Pieces come in document order and each starts after the previous one's start,
            # so the first occurrence from there is this piece, even for repeated text.
            start = text.find(piece, cursor)
            if start < 0:  # pragma: no cover - the splitter only returns substrings
                raise AssertionError("splitter returned text not found in the document")
            spans.append((start, start + len(piece)))
            cursor = start + 1
        return spans

    def split(self, doc: Document) -> list[Chunk]:
        return [
            Chunk(
                id=chunk_id(doc.source, doc.doc_hash, start, end),
                text=doc.text[start:end],
                source=doc.source,
                title=doc.title,
                start=start,
                end=end,
                doc_hash=doc.doc_hash,
                page=doc.page_at(start),
            )
            for start, end in self.spans(doc.text)
        ]
