"""Sentence-aware recursive splitting with overlap; every chunk knows its exact offsets."""

from __future__ import annotations

import hashlib

from index.loaders import Document
from index.types import Chunk

# Paragraphs, then lines, then sentence ends, then clauses, then words: a chunk breaks at the
# coarsest boundary that keeps it under the size (chars, ~4 per token for MiniLM's 256 tokens).
SEPARATORS = ["\n\n", "\n", ". ", "! ", "? ", "; ", ": ", ", ", " ", ""]


def chunk_id(source: str, doc_hash: str, start: int, end: int) -> str:
    """Stable across runs and machines: the same file content always yields the same ids."""
    return hashlib.sha256(f"{source}\0{doc_hash}\0{start}\0{end}".encode()).hexdigest()[:32]


class Chunker:
    """Recursive splitting in the manner of LangChain's RecursiveCharacterTextSplitter, but on
    offsets: it cuts at the coarsest separator that makes pieces fit, merges pieces up to
    ``chunk_size`` characters and carries up to ``chunk_overlap`` characters into the next chunk.

    Working on spans rather than strings means no text is lost (LangChain's splitter drops words
    next to an over-long token) and offsets need no searching, so they are exact by construction.
    """

    def __init__(self, chunk_size: int = 800, chunk_overlap: int = 120) -> None:
        if not 0 <= chunk_overlap < chunk_size:
            raise ValueError("chunk_overlap must be in [0, chunk_size)")
        self.size = chunk_size
        self.overlap = chunk_overlap

    def _pieces(self, text: str, lo: int, hi: int, level: int, out: list[tuple[int, int]]) -> None:
        """Append spans covering ``text[lo:hi]``, each at most ``size`` long."""
        if hi - lo <= self.size:
            out.append((lo, hi))
            return
        for i in range(level, len(SEPARATORS)):
            sep = SEPARATORS[i]
            if not sep:
                out.extend((a, min(a + self.size, hi)) for a in range(lo, hi, self.size))
                return
            cut = text.find(sep, lo, hi)
            if cut < 0:
                continue
            start = lo
            while cut >= 0:
                end = cut + len(sep)  # the separator stays with the text before it
                self._add(text, start, end, i + 1, out)
                start = end
                cut = text.find(sep, start, hi)
            if start < hi:
                self._add(text, start, hi, i + 1, out)
            return

    def _add(self, text: str, lo: int, hi: int, level: int, out: list[tuple[int, int]]) -> None:
        if hi - lo <= self.size:
            out.append((lo, hi))
        else:
            self._pieces(text, lo, hi, level, out)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """``(start, end)`` of each chunk: whitespace-trimmed, in order, covering all the text."""
        pieces: list[tuple[int, int]] = []
        self._pieces(text, 0, len(text), 0, pieces)
        merged: list[tuple[int, int]] = []
        window: list[tuple[int, int]] = []
        for piece in pieces:
            if window and piece[1] - window[0][0] > self.size:
                merged.append((window[0][0], window[-1][1]))
                # Keep a tail of the previous chunk as overlap, as long as the new piece fits.
                while window and (
                    window[-1][1] - window[0][0] > self.overlap
                    or piece[1] - window[0][0] > self.size
                ):
                    window.pop(0)
            window.append(piece)
        if window:
            merged.append((window[0][0], window[-1][1]))
        spans: list[tuple[int, int]] = []
        for a, b in merged:
            while a < b and text[a].isspace():
                a += 1
            while b > a and text[b - 1].isspace():
                b -= 1
            if a < b and (not spans or spans[-1] != (a, b)):
                spans.append((a, b))
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
