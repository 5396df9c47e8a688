"""One physical chunk collection stored as Chroma collections of bounded size ("shards").

Embedded Chroma keeps the HNSW graph of every collection a process has written or searched
in that process's memory, about 2 KB a chunk at 384 dimensions, and frees it only when the
client closes (measured with chromadb 1.5.9; a smaller HNSW cache frees nothing). An ingest
into one collection therefore grows with the corpus. Split into shards of at most ``limit``
chunks, an ingest that fills a shard can close the client and write on into the next one
holding only that one's graph (see ``Index(sole_writer=True)``). A search queries every shard
and merges by distance, the way Lucene searches its segments.

Shard 0 is named like an unsharded collection, so an index built before shards existed is read
as one shard; shard ``i`` is ``<physical>.s<i>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from index.store import Store, shard_name, shard_number, unavailable


class Shards:
    """The Chroma collection methods the index uses, over every shard of ``physical``.

    ``limit`` is the most chunks a shard takes before the next one opens; None: one shard.
    ``on_full(shard)`` is called when a shard fills, before writing into the next.
    """

    def __init__(
        self,
        store: Store,
        physical: str,
        *,
        limit: int | None,
        model: str | None = None,
        dimension: int | None = None,
        on_full: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.physical = physical
        self.limit = limit
        self.model = model
        self.dimension = dimension
        self.on_full = on_full
        self._names: list[str] | None = None
        self._handles: dict[str, Any] = {}
        self._client: Any = None

    # Shards ---------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every shard's Chroma name, shard 0 first (listed from Chroma once, then kept)."""
        if self._names is None:
            with unavailable(self.store.settings):
                found = self.store.client.list_collections()
            numbered = []
            for c in found:
                name = c if isinstance(c, str) else c.name
                n = shard_number(self.physical, name)
                if n is not None:
                    numbered.append((n, name))
            self._names = [name for _, name in sorted(numbered)] or [self.physical]
        return self._names

    def refresh(self) -> None:
        """Forget the shard list: another process may have opened a shard."""
        self._names = None

    def _col(self, name: str) -> Any:
        client = self.store.client
        if client is not self._client:  # closed and reopened (see Index.sole_writer)
            self._handles, self._client = {}, client
        col = self._handles.get(name)
        if col is None:
            with unavailable(self.store.settings):
                col = client.get_collection(name, embedding_function=None)
            self._handles[name] = col
        return col

    def _open_next(self) -> str:
        names = self.names()
        full = names[-1]
        if self.on_full is not None:
            self.on_full(full)
        if self.model is None or self.dimension is None:
            meta = self._col(names[0]).metadata or {}
            self.model, self.dimension = str(meta["model"]), int(meta["dimension"])
        name = shard_name(self.physical, len(names))
        self._handles[name] = self.store.chunks(
            name, model=self.model, dimension=self.dimension, create=True
        )
        names.append(name)
        return name

    # Reading --------------------------------------------------------------------------------

    def count(self) -> int:
        with unavailable(self.store.settings):
            return sum(int(self._col(n).count()) for n in self.names())

    def get(
        self,
        *,
        ids: Sequence[str] | None = None,
        where: dict[str, Any] | None = None,
        where_document: dict[str, Any] | None = None,
        include: Sequence[str] = (),
        limit: int | None = None,
    ) -> dict[str, Any]:
        """Chroma's ``get`` over the shards in order, stopping at ``limit`` records."""
        out: dict[str, list[Any]] = {"ids": [], **{k: [] for k in include}}
        with unavailable(self.store.settings):
            for name in self.names():
                left = None if limit is None else limit - len(out["ids"])
                if left is not None and left <= 0:
                    break
                got = self._col(name).get(
                    ids=list(ids) if ids is not None else None,
                    where=where,
                    where_document=where_document,
                    include=list(include),
                    limit=left,
                )
                out["ids"].extend(got["ids"])
                for k in include:
                    out[k].extend(got[k] if got[k] is not None else [None] * len(got["ids"]))
        return out

    def pages(self, include: Sequence[str], page: int) -> Iterator[dict[str, Any]]:
        """Every record, ``page`` at a time, shard after shard."""
        with unavailable(self.store.settings):
            for name in self.names():
                col, offset = self._col(name), 0
                while True:
                    got = col.get(include=list(include), limit=page, offset=offset)
                    if got["ids"]:
                        yield got
                    if len(got["ids"]) < page:
                        break
                    offset += page

    def query(
        self,
        embedding: list[float],
        n_results: int,
        *,
        where: dict[str, Any] | None = None,
        include: Sequence[str] = (),
    ) -> dict[str, list[Any]]:
        """The ``n_results`` nearest records over all shards, nearest first, as flat lists
        (not Chroma's one list per query embedding)."""
        rows: list[tuple[float, str, dict[str, Any]]] = []
        fields = [k for k in include if k != "distances"]
        with unavailable(self.store.settings):
            for name in self.names():
                res = self._col(name).query(
                    query_embeddings=[embedding],
                    n_results=n_results,
                    where=where,
                    include=[*fields, "distances"],
                )
                found = zip(res["ids"][0], res["distances"][0], strict=True)
                for j, (cid, dist) in enumerate(found):
                    rows.append((float(dist), cid, {k: res[k][0][j] for k in fields}))
        rows.sort(key=lambda r: r[0])
        rows = rows[:n_results]
        out: dict[str, list[Any]] = {"ids": [r[1] for r in rows]}
        out["distances"] = [r[0] for r in rows]
        for k in fields:
            out[k] = [r[2][k] for r in rows]
        return out

    # Writing --------------------------------------------------------------------------------

    def upsert(
        self,
        ids: list[str],
        embeddings: Any,
        documents: list[str],
        metadatas: list[dict[str, Any]],
    ) -> None:
        """Write each record into the shard that holds its id, else into the last shard,
        opening the next one when that is full."""
        rows = list(range(len(ids)))
        data = (ids, embeddings, documents, metadatas)
        with unavailable(self.store.settings):
            for name, held in list(self._holding(ids)):
                self._write(name, [i for i in rows if ids[i] in held], *data)
                rows = [i for i in rows if ids[i] not in held]
            while rows:
                name = self.names()[-1]
                room = len(rows)
                if self.limit is not None:
                    room = min(room, self.limit - int(self._col(name).count()))
                if room <= 0:
                    self._open_next()
                    continue
                take, rows = rows[:room], rows[room:]
                self._write(name, take, *data)

    def _holding(self, ids: list[str]) -> Iterator[tuple[str, set[str]]]:
        """(shard, the ``ids`` it holds) for each shard holding any: an id look-up, which
        leaves the shard's graph unloaded."""
        if not ids:
            return
        for name in self.names():
            held = set(self._col(name).get(ids=ids, include=[])["ids"])
            if held:
                yield name, held

    def _write(
        self,
        name: str,
        rows: list[int],
        ids: list[str],
        embeddings: Any,
        documents: list[str],
        metadatas: list[dict[str, Any]],
    ) -> None:
        self._col(name).upsert(
            ids=[ids[i] for i in rows],
            embeddings=[embeddings[i] for i in rows],
            documents=[documents[i] for i in rows],
            metadatas=[metadatas[i] for i in rows],
        )

    def delete(self, ids: list[str]) -> None:
        """Delete ``ids`` from the shards that hold them (only those load their graph)."""
        with unavailable(self.store.settings):
            for name, held in list(self._holding(ids)):
                self._col(name).delete(ids=sorted(held))
