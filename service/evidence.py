"""Step 3: cut retrieved passages into sentences and score each one against the question.

A sentence's score mixes embedding similarity to the question, coverage of the question's
key terms, whether it holds a span of the type the question asks for, and its passage's
retrieval rank. Sentence splits and vectors come with the chunk from ingest
(:mod:`index.sentences`), so a question costs no embedding beyond its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from index.sentences import Sentences, unpack
from index.types import Chunk, Hit
from service import text as tx
from service.batching import MicroBatcher
from service.cache import LRU
from service.result import Passage

# Weights of the sentence score; cosine and coverage carry it, type and rank break ties.
W_SIM, W_COVERAGE, W_TYPE, W_RANK = 0.45, 0.35, 0.12, 0.08
W_CONTEXT = 0.35  # share of coverage credited to the preceding sentence


class Embedder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class ChunkSentences:
    """Sentences of one passage: offsets relative to the passage text, stems, name keys, vectors."""

    spans: tuple[tuple[int, int], ...]
    stems: tuple[frozenset[str], ...]
    names: tuple[tuple[str, ...], ...]
    vectors: np.ndarray  # (n, dim), L2-normalised


@dataclass(slots=True)
class Sentence:
    passage: int  # index into Evidence.passages
    index: int  # position within the passage
    start: int  # offset in the source document
    end: int
    text: str
    sim: float
    coverage: float
    type_spans: list[
        tuple[int, int]
    ]  # answer-type candidates (offsets in ``text``), minus the question's own
    retrieval: float
    score: float = 0.0


@dataclass(slots=True)
class Evidence:
    question: tx.QuestionInfo
    passages: list[Passage]
    hits: list[Hit]
    sentences: list[Sentence]  # best first
    passage_coverage: list[float]
    qvec: np.ndarray
    weights: list[float] = field(default_factory=list)  # question-term weights in this pool
    by_passage: dict[int, list[Sentence]] = field(default_factory=dict)

    def best(self) -> Sentence | None:
        return self.sentences[0] if self.sentences else None

    def neighbours(self, s: Sentence) -> list[Sentence]:
        return [x for x in self.by_passage.get(s.passage, []) if abs(x.index - s.index) == 1]


def passage_of(hit: Hit) -> Passage:
    c = hit.chunk
    return Passage(
        source=c.source,
        title=c.title,
        chunk_id=c.id,
        start=c.start,
        end=c.end,
        text=c.text,
        score=float(hit.score),
        page=c.page,
    )


def hit_of(p: Passage) -> Hit:
    """The inverse of :func:`passage_of`, for drafters handed passages rather than hits."""
    chunk = Chunk(
        id=p.chunk_id,
        text=p.text,
        source=p.source,
        title=p.title,
        start=p.start,
        end=p.end,
        doc_hash="",
        page=p.page,
    )
    return Hit(chunk=chunk, score=p.score)


class SentenceStore:
    """Process-wide cache of passage sentences and their embeddings, keyed by chunk id and text.

    Chunks ingested with their sentences (:mod:`index.sentences`) only need their word stems
    here; older ones are split and embedded on first use. The cache is bounded so that serving
    memory does not grow with the corpus: 4,096 entries of about 10 KB.
    """

    def __init__(self, embedder: Embedder, max_chunks: int = 4096) -> None:
        self.embedder = embedder
        self._cache: OrderedDict[str, ChunkSentences] = OrderedDict()
        self._max = max_chunks
        self._lock = threading.Lock()

    @staticmethod
    def _key(chunk_id: str, text: str) -> str:
        # The text hash guards against a chunk id reused for edited content.
        return chunk_id + ":" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def get_many(
        self, passages: Sequence[Passage], stored: Sequence[str | None] | None = None
    ) -> list[ChunkSentences]:
        """Sentences of each passage; ``stored`` holds what ingest packed for each, if any."""
        keys = [self._key(p.chunk_id, p.text) for p in passages]
        with self._lock:
            found = {k: self._cache[k] for k in keys if k in self._cache}
            for k in found:
                self._cache.move_to_end(k)
        todo: dict[str, Passage] = {}
        for i, (k, p) in enumerate(zip(keys, passages, strict=True)):
            if k in found:
                continue
            ready = unpack(stored[i]) if stored is not None else None
            if ready is not None and _fits(ready, p.text):
                found[k] = _with_words(p.text, ready.spans, ready.vectors)
            else:
                todo[k] = p
        fresh = dict(zip(todo, self._build([p.text for p in todo.values()]), strict=True))
        found.update(fresh)
        with self._lock:
            for k in keys:
                self._cache[k] = found[k]
                self._cache.move_to_end(k)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return [found[k] for k in keys]

    def _build(self, texts: list[str]) -> list[ChunkSentences]:
        if not texts:
            return []
        all_spans = [tx.sentence_spans(t) for t in texts]
        flat = [t[s:e] for t, spans in zip(texts, all_spans, strict=True) for s, e in spans]
        vecs = self.embedder.encode(flat) if flat else np.zeros((0, 1), dtype=np.float32)
        vecs = np.asarray(vecs, dtype=np.float32)
        out, i = [], 0
        for t, spans in zip(texts, all_spans, strict=True):
            out.append(_with_words(t, tuple(spans), vecs[i : i + len(spans)]))
            i += len(spans)
        return out


def _fits(s: Sentences, text: str) -> bool:
    return all(0 <= a < b <= len(text) for a, b in s.spans)


def _with_words(
    text: str, spans: tuple[tuple[int, int], ...], vectors: np.ndarray
) -> ChunkSentences:
    sents = [text[s:e] for s, e in spans]
    return ChunkSentences(
        spans=spans,
        stems=tuple(frozenset(tx.content_stems(s)) for s in sents),
        names=tuple(name_keys(s) for s in sents),
        vectors=vectors,
    )


def name_keys(sentence: str) -> tuple[str, ...]:
    return tuple(
        dict.fromkeys(tx.entity_key(w) for w, _, _ in tx.words(sentence) if w[:1].isupper())
    )


def matches(q: tx.QuestionInfo, stems: frozenset[str], names: Sequence[str]) -> list[bool]:
    """Which of the question's key terms a sentence contains (names match Iran~Iranian)."""
    return [
        term in stems or (term in q.name_terms and any(tx.entity_match(term, n) for n in names))
        for term in q.terms
    ]


def covered(
    q: tx.QuestionInfo,
    stems: frozenset[str],
    names: Sequence[str],
    weights: Sequence[float] | None = None,
) -> float:
    """Weighted share of the question's key terms found in a sentence."""
    if not q.terms:
        return 0.0
    w = q.weights if weights is None else weights
    total = sum(w)
    return sum(x for x, m in zip(w, matches(q, stems, names), strict=True) if m) / total


def pool_weights(q: tx.QuestionInfo, found: Sequence[Sequence[bool]]) -> list[float]:
    """Question-term weights sharpened by rarity among the retrieved sentences (a local IDF):
    the topic words every passage shares say less than the one word only the answer has."""
    n = len(found)
    out = []
    for i, base in enumerate(q.weights):
        df = sum(1 for row in found if row[i])
        out.append(base * math.log((n + 1) / (df + 0.5)))
    return out


class EvidenceScorer:
    """Scores the sentences of retrieved passages against a question."""

    def __init__(self, embedder: Embedder, store: SentenceStore | None = None) -> None:
        self.embedder = embedder
        self.store = store or SentenceStore(embedder)

    def encode_question(self, question: str) -> np.ndarray:
        return np.asarray(self.embedder.encode([question]), dtype=np.float32)[0]

    def score(self, question: str, hits: Sequence[Hit], qvec: np.ndarray | None = None) -> Evidence:
        q = tx.analyse(question)
        qv = self.encode_question(question) if qvec is None else qvec
        passages = [passage_of(h) for h in hits]
        chunks = self.store.get_many(passages, [h.chunk.sentences for h in hits])
        q_lower = question.lower()
        sentences: list[Sentence] = []
        by_passage: dict[int, list[Sentence]] = {}
        found = [
            [matches(q, st, nm) for st, nm in zip(cs.stems, cs.names, strict=True)] for cs in chunks
        ]
        weights = pool_weights(q, [row for rows in found for row in rows])
        total = sum(weights) or 1.0

        def cov_of(rows: Sequence[Sequence[bool]]) -> float:
            return sum(w for i, w in enumerate(weights) if any(r[i] for r in rows)) / total

        passage_cov: list[float] = []
        for pi, (p, cs) in enumerate(zip(passages, chunks, strict=True)):
            sims = cs.vectors @ qv if len(cs.spans) else np.zeros(0)
            rank_score = 1.0 / (1.0 + pi) ** 0.5
            passage_cov.append(cov_of(found[pi]) if found[pi] else 0.0)
            row: list[Sentence] = []
            for si, (s, e) in enumerate(cs.spans):
                text = p.text[s:e]
                spans = _new_spans(text, q, q_lower)
                cov = cov_of([found[pi][si]])
                if si > 0:
                    # The previous sentence often names what this one calls "they" or "it".
                    ctx = cov_of(found[pi][si - 1 : si + 1])
                    cov = (1 - W_CONTEXT) * cov + W_CONTEXT * ctx
                type_ok = 1.0 if spans else 0.0
                sim = float(sims[si])
                sent = Sentence(
                    passage=pi,
                    index=si,
                    start=p.start + s,
                    end=p.start + e,
                    text=text,
                    sim=sim,
                    coverage=cov,
                    type_spans=spans,
                    retrieval=rank_score,
                    score=W_SIM * sim + W_COVERAGE * cov + W_TYPE * type_ok + W_RANK * rank_score,
                )
                row.append(sent)
            by_passage[pi] = row
            sentences.extend(row)
        sentences.sort(key=lambda x: x.score, reverse=True)
        return Evidence(
            question=q,
            passages=passages,
            hits=list(hits),
            sentences=sentences,
            passage_coverage=passage_cov,
            qvec=qv,
            weights=weights,
            by_passage=by_passage,
        )


def _new_spans(sentence: str, q: tx.QuestionInfo, q_lower: str) -> list[tuple[int, int]]:
    """Answer-type candidates in ``sentence`` that the question does not already mention."""
    if q.answer_type == "other":
        return []
    out = []
    q_stems = set(q.terms)
    for s, e in tx.candidate_spans(sentence, q.answer_type):
        span = sentence[s:e]
        stems = tx.content_stems(span)
        if span.lower() in q_lower or (stems and all(st in q_stems for st in stems)):
            continue
        out.append((s, e))
    return out


class QueryCache:
    """Wraps an embedder so the question, embedded by retrieval, is not embedded again here.

    Only single-text calls are cached (questions); everything else passes through.
    """

    def __init__(self, embedder: Embedder, size: int = 256) -> None:
        self._inner = embedder
        self._memo: LRU[np.ndarray] = LRU(size)
        # Questions of concurrent requests are embedded together (see service.batching).
        self._batcher: MicroBatcher[str, np.ndarray] = MicroBatcher(
            self._embed_questions, max_items=32, wait_ms=2.0, name="question-embedding"
        )

    def _embed_questions(self, texts: list[str]) -> list[np.ndarray]:
        with _one_thread():
            return list(np.asarray(self._inner.encode(texts), dtype=np.float32))

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def clear(self) -> None:
        self._memo.clear()

    def encode(self, texts: list[str]) -> np.ndarray:
        if len(texts) != 1:
            return self._inner.encode(texts)
        hit = self._memo.get(texts[0])
        if hit is not None:
            return hit[None, :].copy()
        vector = self._batcher.submit(texts[0])
        self._memo.put(texts[0], vector)
        return vector[None, :].copy()


_THREADS_LOCK = threading.Lock()


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run a one-sentence encode on one torch thread: splitting a ten-token input across
    threads costs more than it saves, and under CPU contention (a 2-core host also running
    ingestion) it measured 107 ms median against 12 ms single-threaded."""
    try:
        import torch
    except ImportError:  # pragma: no cover - the embedder needs torch anyway
        yield
        return
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)
