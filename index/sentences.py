"""Sentences of a chunk, found and embedded once at ingest and stored with the chunk.

Answering scores every sentence of every retrieved passage against the question. Splitting
(pysbd) and embedding those sentences per question cost 650 ms at 11k chunks, where a small
corpus hid it behind a warm cache; here they are computed in the chunk's own forward pass
and travel with the chunk in its Chroma metadata, so a question pays only for a dot product.

A sentence's vector is the mean of the chunk's contextual token vectors inside the sentence
(the same mean pooling MiniLM applies to a whole text), L2-normalised, and stored as int8
with one scale per sentence: 386 bytes instead of 1,536, cosine error under 0.01.
"""

from __future__ import annotations

import base64
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Bump when spans or vectors are computed differently: chunks stored under another version
# are re-split and re-embedded at question time rather than trusted.
SENTENCES_VERSION = 1

_local = threading.local()


def _segmenter() -> Any:
    # One per thread: a Segmenter keeps the text it is working on in itself, so API requests
    # sharing one got each other's sentences (and abstained as "unsupported").
    seg = getattr(_local, "segmenter", None)
    if seg is None:
        import pysbd

        seg = _local.segmenter = pysbd.Segmenter(language="en", clean=False, char_span=False)
    return seg


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence in ``text``; every span slices ``text`` exactly, trimmed.

    Lines are split first so titles and list items never merge into the next paragraph.
    """
    spans: list[tuple[int, int]] = []
    for line in re.finditer(r"[^\n]+", text):
        segment_text = line.group()
        if not segment_text.strip():
            continue
        cursor = 0
        for seg in _segmenter().segment(segment_text):
            piece = seg.strip()
            if not piece:
                continue
            at = segment_text.find(piece, cursor)
            if at < 0:  # pysbd altered the text; fall back to the rest of the line
                rest = segment_text[cursor:]
                stripped = rest.strip()
                if stripped:
                    at = cursor + rest.find(stripped)
                    spans.append((line.start() + at, line.start() + at + len(stripped)))
                break
            cursor = at + len(piece)
            if re.search(r"\w", piece):
                spans.append((line.start() + at, line.start() + cursor))
    return spans


@dataclass(frozen=True, slots=True)
class Sentences:
    """A chunk's sentences: offsets relative to the chunk text and L2-normalised vectors."""

    spans: tuple[tuple[int, int], ...]
    vectors: np.ndarray = field(compare=False, repr=False)  # (len(spans), dim) float32


def pool(
    token_vectors: np.ndarray, offsets: list[tuple[int, int]], spans: list[tuple[int, int]]
) -> tuple[np.ndarray, list[int]]:
    """Mean-pool ``token_vectors`` (one row per entry of ``offsets``, character ranges in the
    chunk) over each span; returns the normalised rows and the spans no token fell inside
    (past the model's window), which the caller embeds on their own."""
    dim = token_vectors.shape[1]
    out = np.zeros((len(spans), dim), dtype=np.float32)
    starts = np.array([a for a, _ in offsets], dtype=np.int64)
    ends = np.array([b for _, b in offsets], dtype=np.int64)
    real = ends > starts  # special tokens carry (0, 0)
    missing = []
    for i, (s, e) in enumerate(spans):
        inside = real & (starts >= s) & (ends <= e)
        if not inside.any():
            missing.append(i)
            continue
        v = token_vectors[inside].mean(axis=0)
        out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out, missing


def pack(s: Sentences) -> str:
    """``Sentences`` as one metadata string: version, spans, then base64 int8 rows + scales."""
    spans = ",".join(f"{a}:{b}" for a, b in s.spans)
    vec = np.asarray(s.vectors, dtype=np.float32)
    scale = np.maximum(np.abs(vec).max(axis=1, initial=0.0), 1e-12) / 127.0
    q = np.clip(np.rint(vec / scale[:, None]), -127, 127).astype(np.int8)
    blob = q.tobytes() + scale.astype(np.float16).tobytes()
    return f"{SENTENCES_VERSION};{vec.shape[1] if vec.ndim == 2 else 0};{spans};" + (
        base64.b64encode(blob).decode("ascii")
    )


def unpack(value: Any) -> Sentences | None:
    """The inverse of :func:`pack`; None for a missing, foreign-version or damaged value."""
    if not isinstance(value, str):
        return None
    try:
        version, dim_s, spans_s, blob_s = value.split(";", 3)
        if int(version) != SENTENCES_VERSION:
            return None
        dim = int(dim_s)
        spans = tuple((int(a), int(b)) for a, b in (p.split(":") for p in spans_s.split(",") if p))
        blob = base64.b64decode(blob_s)
        n = len(spans)
        q = np.frombuffer(blob, dtype=np.int8, count=n * dim).reshape(n, dim)
        scale = np.frombuffer(blob, dtype=np.float16, count=n, offset=n * dim)
    except (ValueError, TypeError):
        return None
    vectors = q.astype(np.float32) * scale.astype(np.float32)[:, None]
    norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return Sentences(spans=spans, vectors=vectors / norms)
