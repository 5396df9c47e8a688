"""The keyword side of hybrid retrieval: BM25 kept in step with the Chroma collection.

``KeywordIndex`` is the seam. ``BM25Index`` (bm25s) is built at ingest time, updated with each
change set and persisted under ``data_dir/keyword/<collection>.npz`` together with the Chroma
version stamp it reflects, so a process can tell when another one changed the collection.

A deployment on Chroma's distributed service could implement ``KeywordIndex`` on Chroma's native
BM25 sparse index instead; local and single-node Chroma refuse that with "Sparse vector indexing
is not enabled in local", which is why ``keyword_backend="chroma"`` is refused here.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

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

    Ids into a vocabulary of this batch, 4 bytes a token, so an ingest holds a compact array
    per chunk until the index is updated, rather than every chunk's text.
    """

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.ids: list[str] = []
        self.arrays: list[np.ndarray] = []

    def add(self, chunk_id: str, text: str) -> None:
        vocab = self.vocab
        self.ids.append(chunk_id)
        self.arrays.append(
            np.fromiter((vocab.setdefault(t, len(vocab)) for t in tokenize(text)), np.int32)
        )

    def __len__(self) -> int:
        return len(self.ids)


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
        self, add: Sequence[tuple[str, str]] | Tokens, remove: Iterable[str], version: str
    ) -> None:
        """Index ``(chunk_id, text)`` pairs (or tokenised chunks), drop ids, and record the
        collection version."""
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
    """bm25s over stored token ids; updates re-score in memory, never per query."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.version: str | None = None
        self._lock = threading.Lock()
        self._vocab: dict[str, int] = {}
        self._docs: dict[str, np.ndarray] = {}  # chunk id -> token ids (int32)
        # Row order and retriever are swapped as one tuple so a concurrent search never mixes them.
        self._state: tuple[list[str], Any] = ([], None)
        self._load()

    def __len__(self) -> int:
        return len(self._docs)

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._docs)

    # Persistence ---------------------------------------------------------------------------

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            with np.load(self.path, allow_pickle=False) as data:
                vocab = [str(t) for t in data["vocab"]]
                ids = [str(i) for i in data["ids"]]
                flat = data["tokens"]
                offsets = data["offsets"]
                version = str(data["version"])
        except (OSError, ValueError, KeyError):
            return  # a damaged file is rebuilt from Chroma by the caller
        self._vocab = {t: i for i, t in enumerate(vocab)}
        self._docs = {cid: flat[offsets[i] : offsets[i + 1]] for i, cid in enumerate(ids)}
        self.version = version or None
        self._build()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ids = list(self._docs)
        arrays = [self._docs[i] for i in ids]
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        if arrays:
            offsets[1:] = np.cumsum([len(a) for a in arrays])
        flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int32)
        vocab = sorted(self._vocab, key=self._vocab.__getitem__)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(
            tmp,
            vocab=np.array(vocab, dtype=str),
            ids=np.array(ids, dtype=str),
            tokens=flat.astype(np.int32),
            offsets=offsets,
            version=np.array(self.version or ""),
        )
        os.replace(tmp, self.path)

    # Building ------------------------------------------------------------------------------

    def _token_ids(self, text: str) -> np.ndarray:
        vocab = self._vocab
        ids = []
        for tok in tokenize(text):
            tid = vocab.get(tok)
            if tid is None:
                tid = vocab[tok] = len(vocab)
            ids.append(tid)
        return np.array(ids, dtype=np.int32)

    def _build(self) -> None:
        ids = list(self._docs)
        if not ids:
            self._state = ([], None)
            return
        if "" not in self._vocab:
            self._vocab[""] = len(self._vocab)
        retriever = _fast_bm25()
        retriever.index(([self._docs[i] for i in ids], dict(self._vocab)), show_progress=False)
        self._state = (ids, retriever)

    def update(
        self, add: Sequence[tuple[str, str]] | Tokens, remove: Iterable[str], version: str
    ) -> None:
        with self._lock:
            for cid in remove:
                self._docs.pop(cid, None)
            if isinstance(add, Tokens):
                # the batch's own token ids, mapped onto this index's vocabulary
                words = sorted(add.vocab, key=add.vocab.__getitem__)
                table = np.array(
                    [self._vocab.setdefault(w, len(self._vocab)) for w in words], dtype=np.int32
                )
                for cid, arr in zip(add.ids, add.arrays, strict=True):
                    self._docs[cid] = table[arr] if len(arr) else arr
            else:
                for cid, text in add:
                    self._docs[cid] = self._token_ids(text)
            self.version = version
            self._build()
            self._save()

    def rebuild(self, items: Iterable[tuple[str, str]], version: str) -> None:
        with self._lock:
            self._vocab = {}
            self._docs = {cid: self._token_ids(text) for cid, text in items}
            self.version = version
            self._build()
            self._save()

    # Query ---------------------------------------------------------------------------------

    def search(
        self, query: str, k: int, *, allowed: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
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
