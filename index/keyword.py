"""The keyword side of hybrid retrieval: BM25 kept in step with the Chroma collection.

``KeywordIndex`` is the seam. ``BM25Index`` (bm25s) keeps each change set as a segment of
token ids under ``data_dir/keyword/<collection>.<scope>/``, listed in a manifest together with
the Chroma version stamp it reflects, so a process can tell when another one changed the
collection. Ingest writes segments as it goes; a searching process loads them and scores.

A deployment on Chroma's distributed service could implement ``KeywordIndex`` on Chroma's native
BM25 sparse index instead; local and single-node Chroma refuse that with "Sparse vector indexing
is not enabled in local", which is why ``keyword_backend="chroma"`` is refused here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
import time
import uuid
import zipfile
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from index.errors import IndexUnavailable

log = logging.getLogger(__name__)
_MANIFEST = "MANIFEST.json"
# Segments a loading process merges beyond: a fresh 100k-chunk ingest writes about 25.
_COMPACT_AT = 8
_ORPHAN_SECONDS = 86400

_TOKEN = re.compile(r"\w+", re.UNICODE)
# Function words that carry no topic; kept short so questions still match on their content words.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens without stopwords; a crude plural fold helps recall."""
    out = []
    for tok in _TOKEN.findall(text.lower()):
        if tok in STOPWORDS:
            continue
        if len(tok) > 4 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        out.append(tok)
    return out


class Tokens:
    """Chunks tokenised for the keyword index as ingest writes them.

    Ids into a vocabulary of this batch, 4 bytes a token. With ``spill`` (the index's folder),
    every ``limit`` chunks are written there as a segment that no manifest lists yet; the
    index's ``update`` lists them. An ingest then holds at most ``limit`` chunks' tokens,
    however large the corpus.
    """

    def __init__(self, spill: Path | None = None, limit: int = 4096) -> None:
        self.spill = spill
        self.limit = limit
        self.vocab: dict[str, int] = {}
        self.ids: list[str] = []
        self.arrays: list[np.ndarray] = []
        self.segments: list[str] = []

    def add(self, chunk_id: str, text: str) -> None:
        vocab = self.vocab
        self.ids.append(chunk_id)
        self.arrays.append(
            np.fromiter((vocab.setdefault(t, len(vocab)) for t in tokenize(text)), np.int32)
        )
        if self.spill is not None and len(self.ids) >= self.limit:
            self.flush(self.spill)

    def flush(self, folder: Path) -> list[str]:
        """Write what is still held to a segment in ``folder``; every segment written so far."""
        if self.spill is not None and folder != self.spill:
            raise ValueError(f"these tokens spill to {self.spill}, not {folder}")
        if self.ids:
            words = sorted(self.vocab, key=self.vocab.__getitem__)
            self.segments.append(write_segment(folder, words, self.ids, self.arrays))
            self.vocab, self.ids, self.arrays = {}, [], []
        return list(self.segments)


def write_segment(
    folder: Path,
    vocab: Sequence[str],
    ids: Sequence[str],
    arrays: Sequence[np.ndarray],
    removed: Iterable[str] = (),
) -> str:
    """Write one segment (ids removed, then chunks added) to ``folder``; returns its name.

    Nothing reads it until a manifest lists it, so a crash mid-write leaves only an orphan.
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}.npz"
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    if len(arrays):
        np.cumsum([len(a) for a in arrays], out=offsets[1:])
    flat = np.concatenate(arrays).astype(np.int32) if len(arrays) else np.zeros(0, np.int32)
    np.savez(
        folder / name,
        vocab=np.array(list(vocab), dtype=str),
        ids=np.array(list(ids), dtype=str),
        tokens=flat,
        offsets=offsets,
        removed=np.array(list(removed), dtype=str),
    )
    return name


class KeywordIndex(Protocol):
    """What retrieval needs from a keyword index."""

    version: str | None

    def search(
        self, query: str, k: int, *, allowed: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        """Up to ``k`` ``(chunk_id, score)`` pairs, best first; only chunks that match, and
        only chunks in ``allowed`` when it is given (ranked among themselves)."""
        ...

    def update(
        self,
        add: Iterable[tuple[str, str]] | Tokens,
        remove: Iterable[str],
        version: str,
        *,
        replace: bool = False,
    ) -> None:
        """Index ``(chunk_id, text)`` pairs (or tokenised chunks), drop ids, and record the
        collection version; with ``replace``, ``add`` becomes the whole index."""
        ...

    def rebuild(self, items: Iterable[tuple[str, str]], version: str) -> None:
        """Replace everything with ``items``."""
        ...

    def ids(self) -> set[str]:
        """The chunk ids indexed."""
        ...

    def __len__(self) -> int: ...


# Documents per step of the keyword index build (about 1M tokens at 130 a chunk).
_BUILD_BLOCK_DOCS = 8192


def _fast_bm25() -> Any:
    """A bm25s retriever whose index build is vectorized with numpy.

    bm25s builds its score matrix in Python loops (about a minute for 100k chunks here); its
    docs invite overriding ``build_index_from_ids``, which this does with the same Lucene
    formulas, so 100k chunks index in seconds. Retrieval is bm25s's own.
    """
    import bm25s
    import scipy.sparse as sp

    # bm25s pins its logger at DEBUG on import; let the application's level decide.
    logging.getLogger("bm25s").setLevel(logging.NOTSET)

    class FastBM25(bm25s.BM25):
        def build_index_from_ids(
            self,
            unique_token_ids: list[int],
            corpus_token_ids: list[np.ndarray],
            show_progress: bool = True,
            leave_progress: bool = False,
        ) -> dict[str, Any]:
            n_docs = len(corpus_token_ids)
            n_vocab = max(unique_token_ids) + 1
            self.nonoccurrence_array = None  # only BM25L/BM25+ use it; this is Lucene BM25
            lengths = np.fromiter((len(d) for d in corpus_token_ids), np.int64, n_docs)
            # (doc, term, tf) per block of documents: one np.unique over the whole corpus took
            # about 475 MB above the finished matrix at 10M tokens, which a server paid on
            # every start; blocks bound that, and come out in (doc, term) order, i.e. CSR.
            terms_parts, tf_parts = [], []
            per_doc = np.zeros(n_docs, dtype=np.int64)
            for lo in range(0, n_docs, _BUILD_BLOCK_DOCS):
                block = corpus_token_ids[lo : lo + _BUILD_BLOCK_DOCS]
                sizes = lengths[lo : lo + len(block)]
                if not sizes.sum():
                    continue
                flat = np.concatenate(block).astype(np.int64)
                doc_of = np.repeat(np.arange(lo, lo + len(block), dtype=np.int64), sizes)
                pairs, tf = np.unique(doc_of * n_vocab + flat, return_counts=True)
                del flat, doc_of
                per_doc[lo : lo + len(block)] = np.bincount(
                    pairs // n_vocab - lo, minlength=len(block)
                )
                terms_parts.append((pairs % n_vocab).astype(np.int32))
                tf_parts.append(tf.astype(np.float64))
                del pairs, tf
            terms = np.concatenate(terms_parts) if terms_parts else np.zeros(0, np.int32)
            tf = np.concatenate(tf_parts) if tf_parts else np.zeros(0, np.float64)
            del terms_parts, tf_parts
            indptr = np.zeros(n_docs + 1, dtype=np.int64)
            np.cumsum(per_doc, out=indptr[1:])
            df = np.bincount(terms, minlength=n_vocab)
            idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
            avg = max(float(lengths.mean()), 1e-9) if n_docs else 1.0
            norm = self.k1 * ((1.0 - self.b) + self.b * lengths / avg)
            # In place on tf: score = idf * tf / (norm + tf), norm repeated per document.
            doc_norm = np.repeat(norm, per_doc)
            doc_norm += tf
            tf *= idf[terms]
            tf /= doc_norm
            del doc_norm
            matrix = sp.csr_matrix(
                (tf.astype(self.dtype, copy=False), terms, indptr), shape=(n_docs, n_vocab)
            ).tocsc()
            return {
                "data": matrix.data,
                "indices": matrix.indices,
                "indptr": matrix.indptr,
                "num_docs": n_docs,
            }

    return FastBM25()


class BM25Index:
    """bm25s over token ids stored as segments in a folder; loaded and scored on first search.

    ``MANIFEST.json`` lists the segments in order with the Chroma version they reflect.
    ``update`` writes a segment and lists it, so a process that only writes (``groundqa
    ingest``) never loads the index nor builds its score matrix, and its memory does not grow
    with the corpus. A process that has searched applies each update in memory too and
    re-scores before it returns, so a search never waits on a build after the first. The
    first process to load more than ``_COMPACT_AT`` segments merges them into one.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._vocab: dict[str, int] = {}
        self._docs: dict[str, np.ndarray] | None = None  # chunk id -> token ids; None: not loaded
        self._segments: list[str] = []  # what _docs reflects
        self._built = False
        # Row order and retriever are swapped as one tuple so a concurrent search never mixes them.
        self._state: tuple[list[str], Any] = ([], None)
        self.version: str | None = self._read_manifest()[0]

    def __len__(self) -> int:
        with self._lock:
            return len(self._loaded())

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._loaded())

    # Storage -------------------------------------------------------------------------------

    def _read_manifest(self) -> tuple[str | None, list[str]]:
        try:
            data = json.loads((self.folder / _MANIFEST).read_text(encoding="utf-8"))
            return (str(data["version"]) or None), [str(n) for n in data["segments"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None, []  # none yet, or damaged: the caller rebuilds it from Chroma

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        # Other processes (a CLI ingest next to a server) list segments in the same manifest.
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _write_manifest(self, version: str | None, segments: list[str]) -> None:
        tmp = self.folder / f".{_MANIFEST}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"version": version or "", "segments": segments}), "utf-8")
        os.replace(tmp, self.folder / _MANIFEST)

    def _commit(self, new: list[str], version: str, *, replace: bool) -> list[str]:
        """List ``new`` after the manifest's segments (or instead of them); returns the list."""
        with self._file_lock():
            _, old = self._read_manifest()
            segments = new if replace else [*old, *new]
            self._write_manifest(version, segments)
        if replace:
            self._delete(s for s in old if s not in new)
        return segments

    def _delete(self, names: Iterable[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / name).unlink()
        # Segments no manifest lists: a write that crashed. A day's grace keeps those of an
        # ingest still running.
        listed = set(self._read_manifest()[1])
        cutoff = time.time() - _ORPHAN_SECONDS
        for path in self.folder.glob("*.npz"):
            with contextlib.suppress(FileNotFoundError):
                if path.name not in listed and path.stat().st_mtime < cutoff:
                    path.unlink()

    def _apply(self, names: Iterable[str]) -> None:
        assert self._docs is not None
        docs, vocab = self._docs, self._vocab
        for name in names:
            with np.load(self.folder / name, allow_pickle=False) as data:
                words = data["vocab"]
                ids, flat, offsets = data["ids"], data["tokens"], data["offsets"]
                removed = data["removed"]
            for cid in removed:
                docs.pop(str(cid), None)
            # the segment's own token ids, mapped onto this index's vocabulary
            table = np.fromiter(
                (vocab.setdefault(str(w), len(vocab)) for w in words), np.int32, len(words)
            )
            flat = table[flat] if len(flat) else flat
            for i, cid in enumerate(ids):
                docs[str(cid)] = flat[offsets[i] : offsets[i + 1]]

    def _loaded(self) -> dict[str, np.ndarray]:
        """The token ids of every chunk, read from the segments on first use (lock held)."""
        if self._docs is not None:
            return self._docs
        for _ in range(3):
            version, segments = self._read_manifest()
            self._docs, self._vocab = {}, {}
            try:
                self._apply(segments)
            except FileNotFoundError:
                continue  # merged by another process after we read its manifest: read again
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                log.warning("keyword index %s is damaged (%s): rebuilding it", self.folder, exc)
                version, segments = None, []
                self._docs, self._vocab = {}, {}
            self.version, self._segments = version, segments
            if len(segments) > _COMPACT_AT:
                self._compact()
            return self._docs
        self._docs = None  # not loaded: the next use tries again
        raise IndexUnavailable(f"keyword index {self.folder} kept changing while it loaded")

    def _compact(self) -> None:
        """Merge the segments this process holds into one, unless the manifest moved on."""
        assert self._docs is not None
        segments = self._segments
        ids = list(self._docs)
        vocab = sorted(self._vocab, key=self._vocab.__getitem__)
        merged = write_segment(self.folder, vocab, ids, [self._docs[i] for i in ids])
        with self._file_lock():
            version, now = self._read_manifest()
            moved = now != segments
            if not moved:
                self._write_manifest(version, [merged])
                self._segments = [merged]
        self._delete([merged] if moved else segments)

    def _build(self) -> None:
        docs = self._loaded()
        ids = list(docs)
        if not ids:
            self._state, self._built = ([], None), True
            return
        if "" not in self._vocab:
            self._vocab[""] = len(self._vocab)
        retriever = _fast_bm25()
        retriever.index(([docs[i] for i in ids], dict(self._vocab)), show_progress=False)
        self._state = (ids, retriever)
        self._built = True

    # Writing -------------------------------------------------------------------------------

    def update(
        self,
        add: Iterable[tuple[str, str]] | Tokens,
        remove: Iterable[str],
        version: str,
        *,
        replace: bool = False,
    ) -> None:
        if not isinstance(add, Tokens):
            # tokenised as they come (Chroma's pages on a rebuild), spilled as they fill
            tokens = Tokens(self.folder)
            for cid, text in add:
                tokens.add(cid, text)
            add = tokens
        added = add.flush(self.folder)
        removed = list(remove)
        # Removals first: they name chunks of earlier segments, never ones this change adds.
        new = [write_segment(self.folder, (), (), (), removed)] if removed else []
        new += added
        with self._lock:
            segments = self._commit(new, version, replace=replace)
            self.version = version or None
            if self._docs is None:
                return  # nothing in memory to keep in step: the first search loads it
            if replace:
                self._docs, self._vocab, self._segments = {}, {}, []
            self._apply(new)
            # What memory holds; when another process listed segments in between, the two
            # differ and compaction declines (a later version check catches this one up).
            self._segments = [*self._segments, *new]
            if len(segments) > _COMPACT_AT:
                self._compact()
            if self._built:
                self._build()

    def rebuild(self, items: Iterable[tuple[str, str]], version: str) -> None:
        self.update(items, (), version, replace=True)

    # Query ---------------------------------------------------------------------------------

    def search(
        self, query: str, k: int, *, allowed: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        if not self._built:
            with self._lock:
                if not self._built:
                    self._build()
        ids, retriever = self._state
        if retriever is None or not ids or k <= 0 or (allowed is not None and not allowed):
            return []
        vocab = retriever.vocab_dict
        q = [vocab[t] for t in dict.fromkeys(tokenize(query)) if t in vocab]
        if not q:
            return []
        k = min(k, len(ids))
        mask = None
        if allowed is not None:
            # Zero weight outside the scope: bm25s then ranks only the allowed rows, so the top
            # k comes from inside the scope.
            mask = np.fromiter((cid in allowed for cid in ids), dtype=np.float32, count=len(ids))
        docs, scores = retriever.retrieve(
            [q], k=k, show_progress=False, return_as="tuple", n_threads=0, weight_mask=mask
        )
        out = []
        for row, score in zip(docs[0], scores[0], strict=True):
            if score <= 0:
                break
            out.append((ids[int(row)], float(score)))
        return out
