"""The ``Index`` facade: incremental ingestion into Chroma + BM25, and hybrid search."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index.chunking import Chunker
from index.embedding import Embedder, get_embedder
from index.errors import ConfigError, DocumentError, IndexEmpty, IndexUnavailable
from index.keyword import BM25Index, KeywordIndex, Tokens
from index.loaders import Document, file_hash, parse, read_bytes, walk
from index.malloc import release_free_memory
from index.sentences import pack
from index.settings import IndexSettings
from index.store import Pointer, Store, batched, unavailable
from index.types import Chunk, Hit, IngestReport, SourceInfo

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (files done, files total)

RRF_K = 60
# Chunks embedded per write group: large enough for efficient batches, small enough that an
# interrupted ingest keeps most of its work.
GROUP_CHUNKS = 2048


def source_id(source: str) -> str:
    """The stable id of a source (used by DELETE /v1/documents/{id})."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class _Entry:
    source: str
    doc_hash: str
    state: str  # "pending" while its chunks are being written, then "done"
    title: str
    chunks: int
    pages: int | None


class Index:
    """A corpus indexed in Chroma (dense) and BM25 (keyword), searched by rank fusion.

    Construction is cheap: no model load and no network until first use. Safe to share between
    threads: searches run concurrently; writes (ingest, remove_source) take a lock.

    A search whose embedding model differs from the one that built the serving collection
    raises IndexUnavailable asking for a re-ingest, so a dimension mismatch never reaches Chroma.
    """

    # How often a search re-reads the version stamp to notice other writers (seconds).
    stamp_interval: float = 2.0

    def __init__(self, settings: IndexSettings, *, embedder: Embedder | None = None) -> None:
        if settings.keyword_backend == "chroma":
            raise ConfigError(
                "keyword_backend 'chroma' needs Chroma's distributed service (native BM25 sparse "
                "index); local and single-node Chroma have no sparse indexing: use 'bm25s'"
            )
        self.settings = settings
        self._store = Store(settings)
        self._embedder = embedder
        self._chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
        self._write_lock = threading.RLock()
        self._write_depth = 0  # > 0 while this process writes: its own stamps are not news
        self._read_lock = threading.Lock()
        self._keywords: dict[str, KeywordIndex] = {}
        self._pointer: Pointer | None = None
        self._pointer_at = 0.0
        self._precision_warned = ""  # the index version last warned about (see _check_precision)
        self._collections: dict[str, Any] = {}
        self._scopes: dict[str, frozenset[str]] = {}  # scope -> chunk ids, see _scope_ids

    # Public surface --------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder(self.settings)
        return self._embedder

    def ping(self) -> None:
        """Raise IndexUnavailable when Chroma cannot be reached."""
        self._store.ping()

    def count(self) -> int:
        """Chunks in the serving collection."""
        pointer = self._current_pointer(fresh=True)
        if pointer.active is None:
            return 0
        with unavailable(self.settings):
            return int(self._collection(pointer.active).count())

    def sources(self) -> list[SourceInfo]:
        pointer = self._current_pointer(fresh=True)
        if pointer.active is None:
            return []
        out = []
        for entry in self._manifest(pointer.active).values():
            if entry.state != "done":
                continue
            out.append(
                SourceInfo(
                    id=source_id(entry.source),
                    source=entry.source,
                    title=entry.title,
                    doc_hash=entry.doc_hash,
                    chunks=entry.chunks,
                    pages=entry.pages,
                )
            )
        return sorted(out, key=lambda s: s.source)

    def document_text(self, source: str) -> str:
        """The full text of ``source`` as indexed; KeyError when it is not in the index."""
        pointer = self._current_pointer(fresh=True)
        if pointer.active is not None:
            with unavailable(self.settings):
                got = self._store.registry().get(
                    ids=[self._entry_id(pointer.active, source)], include=["documents"]
                )
            if got["ids"] and got["documents"] and got["documents"][0] is not None:
                return str(got["documents"][0])
        raise KeyError(f"source {source!r} is not in the index")

    def remove_source(self, source: str) -> int:
        """Drop a source's chunks from the index (not the file); returns how many were removed."""
        with self._writing():
            pointer = self._current_pointer(fresh=True)
            if pointer.active is None:
                return 0
            col = self._collection(pointer.active)
            with unavailable(self.settings):
                present = col.get(where={"source": source}, include=[], limit=1)["ids"]
            if not present and source not in self._manifest(pointer.active):
                return 0
            keyword = self._keyword(pointer.active, pointer.version)
            self._store.bump()
            removed = self._delete_source(pointer.active, col, source)
            version = self._store.bump()
            keyword.update((), removed, version)
            self._remember(version)
            return len(removed)

    def ingest(
        self, path: Path | str | None = None, progress: Progress | None = None
    ) -> IngestReport:
        """Bring the index in line with a corpus folder (or add/refresh one file).

        A folder is the corpus root: sources are paths relative to it and indexed sources
        missing from it are removed. A single file is added or refreshed under its name relative
        to ``settings.corpus_dir`` (or its bare name when outside it); nothing is removed.
        Unchanged files are not re-embedded. When the embedding model changed, the whole corpus is
        embedded into a fresh collection that starts serving only once complete.
        """
        started = time.perf_counter()
        root = Path(path) if path is not None else self.settings.corpus_dir
        files = list(walk(root))
        full_sync = root.is_dir()
        if root.is_file():
            files = [(self._file_source(root), root)]
        report = IngestReport()
        with self._writing():
            self._ingest(files, full_sync, report, progress)
        report.seconds = time.perf_counter() - started
        return report

    def containing(
        self, sources: Collection[str], needles: Collection[str], limit: int = 8
    ) -> list[str]:
        """Up to ``limit`` chunk texts of ``sources`` that contain any of ``needles``
        (case-sensitive substrings).

        Chroma's full-text ``$contains`` filter does the work, so the cost is one look-up, not a
        read of the documents; [] when nothing is indexed or the documents never say them."""
        needles = sorted({n for n in needles if n})
        if not needles or not sources:
            return []
        pointer = self._current_pointer()
        if pointer.active is None:
            return []
        col = self._collection(pointer.active)
        clauses = [{"$contains": n} for n in needles]
        with unavailable(self.settings):
            got = col.get(
                where={"source": {"$in": sorted(sources)}},
                where_document=clauses[0] if len(clauses) == 1 else {"$or": clauses},
                limit=limit,
                include=["documents"],
            )
        return [str(d) for d in got["documents"] or [] if d is not None]

    def search(self, query: str, k: int, *, sources: Collection[str] | None = None) -> list[Hit]:
        """Top ``k`` chunks for ``query``: dense and BM25 rankings fused by reciprocal rank,
        near-duplicates removed. ``dense_score`` is the cosine similarity, also for chunks only
        the keyword side found.

        ``sources`` scopes the search to those documents: both rankings are taken among their
        chunks only (a Chroma ``where`` and a BM25 row mask), so a scope still yields its top
        ``k`` rather than whatever of an unscoped top ``k`` happened to fall inside it."""
        if not query.strip() or k <= 0 or (sources is not None and not sources):
            return []
        pointer = self._current_pointer()
        if pointer.active is None:
            raise IndexEmpty("nothing has been ingested yet: run `groundqa ingest`")
        embedder = self.embedder
        if pointer.model != embedder.fingerprint:
            raise IndexUnavailable(
                f"the index was built with a different embedding model (fingerprint "
                f"{pointer.model}, {pointer.dimension} dims) than {embedder.name!r} "
                f"({embedder.fingerprint}); re-run `groundqa ingest` to rebuild it"
            )
        self._check_precision(pointer)
        col = self._collection(pointer.active)
        keyword = self._keyword(pointer.active, pointer.version, reading=True)
        n = max(4 * k, 20)
        qv = embedder.encode([query])[0]
        where = None if sources is None else {"source": {"$in": sorted(sources)}}
        allowed = None if where is None else self._scope_ids(col, pointer.version, where)
        with unavailable(self.settings):
            res = col.query(
                query_embeddings=[qv.tolist()],
                n_results=n,
                where=where,
                include=["documents", "metadatas", "distances"],
            )
        chunks: dict[str, Chunk] = {}
        dense: dict[str, tuple[int, float]] = {}
        for rank, (cid, doc, meta, dist) in enumerate(
            zip(
                res["ids"][0],
                res["documents"][0],
                res["metadatas"][0],
                res["distances"][0],
                strict=True,
            )
        ):
            chunks[cid] = _chunk(cid, doc, meta)
            dense[cid] = (rank, 1.0 - float(dist))
        kw = {
            cid: (rank, score)
            for rank, (cid, score) in enumerate(keyword.search(query, n, allowed=allowed))
        }
        missing = [cid for cid in kw if cid not in chunks]
        if missing:
            with unavailable(self.settings):
                got = col.get(ids=missing, include=["documents", "metadatas", "embeddings"])
            for cid, doc, meta, vec in zip(
                got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True
            ):
                chunks[cid] = _chunk(cid, doc, meta)
                dense[cid] = (-1, float(np.dot(np.asarray(vec, dtype=np.float32), qv)))
        fused: list[Hit] = []
        for cid, chunk in chunks.items():
            d_rank, d_score = dense.get(cid, (-1, None))
            k_rank, k_score = kw.get(cid, (-1, None))
            if cid not in kw and d_rank < 0:
                continue  # a keyword id Chroma no longer has
            score = 0.0
            if d_rank >= 0:
                score += 1.0 / (RRF_K + d_rank + 1)
            if k_rank >= 0:
                score += 1.0 / (RRF_K + k_rank + 1)
            fused.append(
                Hit(
                    chunk=chunk,
                    score=score,
                    dense_score=d_score,
                    keyword_score=k_score,
                    dense_rank=d_rank if d_rank >= 0 else None,
                    keyword_rank=k_rank if k_rank >= 0 else None,
                )
            )
        fused.sort(key=lambda h: (-h.score, -(h.dense_score or 0.0), h.chunk.id))
        return dedupe(fused, k)

    def _scope_ids(self, col: Any, version: str, where: dict[str, Any]) -> frozenset[str]:
        """The chunk ids of a scope, memoized per version stamp (a scope is asked repeatedly)."""
        key = f"{version}\0{json.dumps(where, sort_keys=True)}"
        with self._read_lock:
            ids = self._scopes.get(key)
        if ids is None:
            with unavailable(self.settings):
                ids = frozenset(col.get(where=where, include=[])["ids"])
            with self._read_lock:
                self._scopes[key] = ids
                while len(self._scopes) > 64:
                    self._scopes.pop(next(iter(self._scopes)))
        return ids

    # Ingestion -------------------------------------------------------------------------------

    def _file_source(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.settings.corpus_dir.resolve()).as_posix()
        except ValueError:
            return path.name

    def _ingest(
        self,
        files: list[tuple[str, Path]],
        full_sync: bool,
        report: IngestReport,
        progress: Progress | None,
    ) -> None:
        store = self._store
        embedder = self.embedder
        pointer = self._current_pointer(fresh=True)
        target = store.physical_name(embedder.fingerprint)
        rebuilding = pointer.active is not None and pointer.active != target
        if rebuilding and not full_sync:
            raise ConfigError(
                "the embedding model changed; ingest the whole corpus folder to rebuild the index"
            )
        col = self._existing(target)
        # A collection this run creates starts its keyword index from nothing, rather than
        # reading back from Chroma what this run is about to write.
        fresh_target = col is None
        manifest = self._manifest(target) if col is not None else {}
        with unavailable(self.settings):
            if manifest and col is not None and col.count() == 0:
                manifest = {}  # the chunks were dropped behind our back: start over

        def chunks_col() -> Any:
            # Created on first write: only then is the model loaded for its dimension.
            nonlocal col
            if col is None:
                col = store.chunks(
                    target, model=embedder.fingerprint, dimension=embedder.dimension, create=True
                )
                self._collections[target] = col
            return col

        # What the keyword index gains, tokenised as each group is written and spilled to
        # unlisted segments, so ingest's memory does not grow with the corpus.
        adds = Tokens(self._keyword_path(target))
        removes: list[str] = []
        dirty = False

        def begin() -> None:
            nonlocal dirty
            if not dirty:
                # Stamp before writing so readers elsewhere never trust a half-applied change;
                # the stamp also records the precision of the vectors about to be written.
                store.bump(embedder.precision)
                dirty = True

        group: list[tuple[Document, _Entry | None, list[Chunk]]] = []
        group_chunks = 0
        seen: set[str] = set()
        total = len(files)
        for done, (source, path) in enumerate(files, 1):
            seen.add(source)
            entry = manifest.get(source)
            try:
                data = read_bytes(path, source, self.settings.max_file_bytes)
                doc_hash = file_hash(data)
                if entry is not None and entry.state == "done" and entry.doc_hash == doc_hash:
                    report.unchanged.append(source)
                    continue
                doc = parse(data, source, doc_hash)
            except DocumentError as exc:
                report.skipped[source] = exc.reason
                log.warning("skipped %s: %s", source, exc.reason)
                if entry is not None:
                    # An indexed file that became unusable no longer belongs in the index.
                    begin()
                    removes.extend(self._delete_source(target, chunks_col(), source))
                    report.removed.append(source)
                continue
            finally:
                if progress is not None:
                    progress(done, total)
            chunks = self._chunker.split(doc)
            group.append((doc, entry, chunks))
            group_chunks += len(chunks)
            (
                report.updated if entry is not None and entry.state == "done" else report.added
            ).append(source)
            if group_chunks >= GROUP_CHUNKS:
                begin()
                self._write_group(target, chunks_col(), group, adds, removes, report)
                group, group_chunks = [], 0
                # The group's tensors are freed but glibc keeps the heap: without this the
                # peak climbs group by group (see index.malloc).
                release_free_memory()
        if group:
            begin()
            self._write_group(target, chunks_col(), group, adds, removes, report)
            release_free_memory()
        if full_sync:
            for source in sorted(set(manifest) - seen):
                begin()
                removes.extend(self._delete_source(target, chunks_col(), source))
                report.removed.append(source)
        if rebuilding or pointer.active is None:
            chunks_col()
            version = store.set_pointer(
                active=target,
                model=embedder.fingerprint,
                dimension=embedder.dimension,
                precisions=(embedder.precision,),
            )
            report.rebuilt = rebuilding
            if fresh_target:
                keyword = self._keyword_index(target)
                keyword.update(adds, removes, version, replace=True)
            else:
                # Reconciled against Chroma (already holding this run's writes) when its stamp
                # is not the one this run started from; re-applying is safe.
                keyword = self._keyword(target, None if rebuilding else pointer.version)
                keyword.update(adds, removes, version)
            self._remember(version)
            if rebuilding and pointer.active is not None:
                store.drop(pointer.active)
                self._keywords.pop(pointer.active, None)
                self._collections.pop(pointer.active, None)
                shutil.rmtree(self._keyword_path(pointer.active), ignore_errors=True)
        elif dirty:
            keyword = self._keyword(target, pointer.version)
            version = store.bump()
            keyword.update(adds, removes, version)
            self._remember(version)
        with unavailable(self.settings):
            report.chunks_total = int(col.count()) if col is not None else 0

    def _write_group(
        self,
        physical: str,
        col: Any,
        group: list[tuple[Document, _Entry | None, list[Chunk]]],
        adds: Tokens,
        removes: list[str],
        report: IngestReport,
    ) -> None:
        registry = self._store.registry()
        max_batch = self._max_batch()
        docs = [doc for doc, _, _ in group]
        with unavailable(self.settings):
            # Write-ahead: a crash before the final entry leaves "pending", which the next run
            # treats as changed (and as removable if the file is gone), so no chunk is orphaned.
            fresh = [doc for doc, entry, _ in group if entry is None]
            for batch in batched(fresh, max_batch):
                registry.upsert(
                    ids=[self._entry_id(physical, d.source) for d in batch],
                    embeddings=[[1.0]] * len(batch),
                    metadatas=[
                        {
                            "collection": physical,
                            "source": d.source,
                            "state": "pending",
                            "doc_hash": d.doc_hash,
                        }
                        for d in batch
                    ],
                )
        chunks = [c for _, _, doc_chunks in group for c in doc_chunks]
        texts = [c.text for c in chunks]
        encode_chunks = getattr(self.embedder, "encode_chunks", None)
        if encode_chunks is not None:
            vectors, sentences = encode_chunks(texts)
            packed: list[str | None] = [pack(s) for s in sentences]
        else:  # an embedder without token vectors: answering splits these chunks itself
            vectors, packed = self.embedder.encode(texts), [None] * len(chunks)
        report.chunks_embedded += len(chunks)
        with unavailable(self.settings):
            for lo in range(0, len(chunks), max_batch):
                part = chunks[lo : lo + max_batch]
                col.upsert(
                    ids=[c.id for c in part],
                    embeddings=vectors[lo : lo + max_batch],
                    documents=[c.text for c in part],
                    metadatas=[
                        _metadata(c, s)
                        for c, s in zip(part, packed[lo : lo + max_batch], strict=True)
                    ],
                )
            new_ids = {c.id for c in chunks}
            for doc, entry, _ in group:
                if entry is None:
                    continue
                old = col.get(where={"source": doc.source}, include=[])["ids"]
                stale = [cid for cid in old if cid not in new_ids]
                for batch in batched(stale, max_batch):
                    col.delete(ids=batch)
                removes.extend(stale)
            per_doc: dict[str, int] = {}
            for c in chunks:
                per_doc[c.source] = per_doc.get(c.source, 0) + 1
            for batch in batched(docs, max(1, min(max_batch, 256))):
                registry.upsert(
                    ids=[self._entry_id(physical, d.source) for d in batch],
                    embeddings=[[1.0]] * len(batch),
                    documents=[d.text for d in batch],
                    metadatas=[
                        _entry_metadata(physical, d, per_doc.get(d.source, 0)) for d in batch
                    ],
                )
        for c in chunks:
            adds.add(c.id, c.text)

    def _delete_source(self, physical: str, col: Any, source: str) -> list[str]:
        with unavailable(self.settings):
            ids = list(col.get(where={"source": source}, include=[])["ids"])
            for batch in batched(ids, self._max_batch()):
                col.delete(ids=batch)
            self._store.registry().delete(ids=[self._entry_id(physical, source)])
        return ids

    # State ------------------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[None]:
        with self._write_lock:
            self._write_depth += 1
            try:
                yield
            finally:
                self._write_depth -= 1

    def _max_batch(self) -> int:
        try:
            return max(1, int(self._store.client.get_max_batch_size()))
        except Exception:
            return 1000

    @staticmethod
    def _entry_id(physical: str, source: str) -> str:
        return f"{physical}:{source_id(source)}"

    def _manifest(self, physical: str) -> dict[str, _Entry]:
        """What Chroma holds for ``physical``, per source (read from the registry records)."""
        with unavailable(self.settings):
            got = self._store.registry().get(where={"collection": physical}, include=["metadatas"])
        out: dict[str, _Entry] = {}
        for meta in got["metadatas"] or []:
            if not meta:
                continue
            source = str(meta["source"])
            pages = int(meta.get("pages") or 0)
            out[source] = _Entry(
                source=source,
                doc_hash=str(meta.get("doc_hash", "")),
                state=str(meta.get("state", "pending")),
                title=str(meta.get("title", "")),
                chunks=int(meta.get("chunks") or 0),
                pages=pages or None,
            )
        return out

    def _existing(self, physical: str) -> Any:
        """The chunk collection ``physical``, or None when Chroma has none by that name."""
        try:
            return self._collection(physical)
        except IndexUnavailable:
            raise
        except Exception as exc:
            if "does not exist" in str(exc).lower() or type(exc).__name__ == "NotFoundError":
                return None
            raise

    def _collection(self, physical: str) -> Any:
        col = self._collections.get(physical)
        if col is None:
            with unavailable(self.settings):
                col = self._store.client.get_collection(physical, embedding_function=None)
            self._collections[physical] = col
        return col

    def _check_precision(self, pointer: Pointer) -> None:
        # Vectors of one model in two precisions agree closely but not exactly, and the
        # abstention model was calibrated on one precision throughout: a bf16-built index
        # searched with int8 questions moved confidences by up to 0.07 and turned one
        # abstention of the default eval set into an answer (score 0.844 -> 0.828). Said once
        # per index version, since replicas on different hardware may do this on purpose.
        mine = self.embedder.precision
        if not pointer.precisions or set(pointer.precisions) == {mine}:
            return
        if self._precision_warned == pointer.version:
            return
        self._precision_warned = pointer.version
        log.warning(
            "the index holds %s vectors and this process embeds questions in %s: answers and "
            "confidences can differ from the calibrated ones; set GROUNDQA_MODEL_PRECISION to "
            "match, or rebuild the index in %s (a fresh GROUNDQA_DATA_DIR or collection)",
            "/".join(pointer.precisions),
            mine,
            mine,
        )

    def _current_pointer(self, fresh: bool = False) -> Pointer:
        now = time.monotonic()
        pointer = self._pointer
        if fresh or pointer is None or now - self._pointer_at >= self.stamp_interval:
            pointer = self._store.pointer()
            self._pointer, self._pointer_at = pointer, now
        return pointer

    def _remember(self, version: str) -> None:
        self._pointer = self._store.pointer()
        self._pointer_at = time.monotonic()

    def _keyword_path(self, physical: str) -> Path:
        where = self.settings.chroma_url or "embedded"
        scope = hashlib.sha256(
            f"{where}\0{self.settings.chroma_tenant}\0{self.settings.chroma_database}".encode()
        ).hexdigest()[:8]
        return self.settings.data_dir / "keyword" / f"{physical}.{scope}"

    def _keyword_index(self, physical: str) -> KeywordIndex:
        """The keyword index object of ``physical``, as stored; nothing is checked or loaded."""
        with self._read_lock:
            keyword = self._keywords.get(physical)
            if keyword is None:
                match self.settings.keyword_backend:
                    case "bm25s":
                        path = self._keyword_path(physical)
                        # Before segments, one file held the index; it is rebuilt from Chroma.
                        path.with_name(f"{path.name}.npz").unlink(missing_ok=True)
                        keyword = BM25Index(path)
                    case "chroma":
                        raise ConfigError(
                            "keyword_backend 'chroma' needs Chroma's distributed service (native "
                            "BM25 sparse index); local Chroma has no sparse indexing: use 'bm25s'"
                        )
                self._keywords[physical] = keyword
            return keyword

    def _keyword(
        self, physical: str, version: str | None, *, reading: bool = False
    ) -> KeywordIndex:
        """The keyword index of ``physical``, rebuilt from Chroma when its stamp is stale."""
        keyword = self._keyword_index(physical)
        with self._read_lock:
            stale = version is None or keyword.version != version
            if stale and reading and self._write_depth and keyword.version is not None:
                # A write of this process moved the stamp; it updates this index when done.
                return keyword
            if stale and keyword.version is None:
                log.info("building the keyword index of %s from Chroma", physical)
                keyword.rebuild(self._all_texts(physical), version or "")
            elif stale:
                self._catch_up(physical, keyword, version or "")
            return keyword

    def _catch_up(self, physical: str, keyword: KeywordIndex, version: str) -> None:
        """Bring a stale keyword index in line with Chroma by the ids that came and went.

        Chunk ids are content hashes, so an edited chunk is a new id: only the texts of new
        ids are fetched, which keeps a replica's catch-up to listing ids plus the change,
        instead of re-reading the whole collection on every write elsewhere.
        """
        started = time.perf_counter()
        present = set(self._all_ids(physical))
        have = keyword.ids()
        new, gone = sorted(present - have), have - present
        col = self._collection(physical)
        texts: list[tuple[str, str]] = []
        with unavailable(self.settings):
            for batch in batched(new, 1000):
                got = col.get(ids=batch, include=["documents"])
                texts.extend(zip(got["ids"], got["documents"] or [], strict=True))
        keyword.update(texts, gone, version)
        log.info(
            "keyword index of %s caught up: %d added, %d removed in %.2f s",
            physical,
            len(texts),
            len(gone),
            time.perf_counter() - started,
        )

    def _all_ids(self, physical: str) -> Iterator[str]:
        col = self._collection(physical)
        page = 10000
        offset = 0
        with unavailable(self.settings):
            while True:
                ids = col.get(include=[], limit=page, offset=offset)["ids"]
                yield from ids
                if len(ids) < page:
                    break
                offset += page

    def _all_texts(self, physical: str) -> Iterator[tuple[str, str]]:
        # Streamed page by page: the keyword index tokenises as it goes, and no list of every
        # text in the collection is held.
        col = self._collection(physical)
        page = 5000
        offset = 0
        with unavailable(self.settings):
            while True:
                got = col.get(include=["documents"], limit=page, offset=offset)
                ids = got["ids"]
                yield from zip(ids, got["documents"] or [], strict=True)
                if len(ids) < page:
                    break
                offset += page


def _metadata(c: Chunk, sentences: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "source": c.source,
        "title": c.title,
        "start": c.start,
        "end": c.end,
        "doc_hash": c.doc_hash,
    }
    if c.page is not None:
        meta["page"] = c.page
    if sentences is not None:
        meta["sentences"] = sentences
    return meta


def _entry_metadata(physical: str, doc: Document, chunks: int) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "collection": physical,
        "source": doc.source,
        "state": "done",
        "doc_hash": doc.doc_hash,
        "title": doc.title,
        "chunks": chunks,
        "pages": doc.pages or 0,
    }
    if doc.page_starts is not None:
        meta["page_starts"] = json.dumps(list(doc.page_starts))
    return meta


def _chunk(cid: str, text: Any, meta: Any) -> Chunk:
    page = meta.get("page")
    return Chunk(
        id=cid,
        text=str(text),
        source=str(meta["source"]),
        title=str(meta.get("title", "")),
        start=int(meta["start"]),
        end=int(meta["end"]),
        doc_hash=str(meta.get("doc_hash", "")),
        page=int(page) if page is not None else None,
        sentences=meta.get("sentences"),
    )


_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def dedupe(hits: list[Hit], k: int) -> list[Hit]:
    """Keep the best of near-duplicates: chunks of one source overlapping by half the shorter
    one, or texts whose word sets are 90% the same; returns at most ``k`` hits."""
    kept: list[Hit] = []
    kept_words: list[set[str]] = []
    for hit in hits:
        c = hit.chunk
        words = _words(c.text)
        duplicate = False
        for other, other_words in zip(kept, kept_words, strict=True):
            o = other.chunk
            if o.source == c.source:
                overlap = min(o.end, c.end) - max(o.start, c.start)
                if overlap > 0 and overlap >= 0.5 * min(o.end - o.start, c.end - c.start):
                    duplicate = True
                    break
            union = len(words | other_words)
            if union and len(words & other_words) / union >= 0.9:
                duplicate = True
                break
        if duplicate:
            continue
        kept.append(hit)
        kept_words.append(words)
        if len(kept) >= k:
            break
    return kept
