"""Several named corpora in one Chroma: list, create, delete, and one ``Index`` per name.

A collection is what ``IndexSettings.collection`` already names: a ``<name>-registry`` Chroma
collection (manifest and version stamp) plus ``<name>-<fingerprint>`` chunk collections and a
BM25 file per chunk collection (see ``index.store``). So the registry collections *are* the list
of collections: nothing else has to be kept in step, replicas sharing a Chroma server see the same
list, and a data dir written before collections existed reads as its default collection.

Names are checked here. Chroma allows 3-63 characters; the longest name Chroma is asked for is
``<name>-registry`` (or ``<name>-`` plus a 12-character fingerprint), so a collection name may
have at most 42 characters (the ``IndexSettings.collection`` pattern).

Scopes (a question limited to some documents) are resolved to source paths here too, from the
manifest, so the dense and keyword sides get the same list.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from index.core import Index
from index.embedding import Embedder
from index.errors import ConfigError, GroundQAError, NotFound
from index.settings import IndexSettings
from index.store import make_client, unavailable
from index.types import SourceInfo

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,40}[A-Za-z0-9]$")
_REGISTRY = "-registry"
_PHYSICAL = re.compile(r"-[0-9a-f]{12}$")


class CollectionNotFound(NotFound):
    def __init__(self, name: str) -> None:
        # The message never says whether the name exists elsewhere: the API uses this same
        # error for a collection the caller may not see.
        super().__init__(f"no collection named {name!r}")
        self.name = name


def check_name(name: str) -> str:
    """``name`` if it is a valid collection name; ConfigError saying why otherwise."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(
            f"invalid collection name {name!r}: 3-42 characters, letters, digits, '.', '_' or "
            "'-', starting and ending with a letter or digit"
        )
    if ".." in name:
        raise ConfigError(f"invalid collection name {name!r}: no two periods in a row")
    if re.fullmatch(r"[0-9.]+", name):
        raise ConfigError(f"invalid collection name {name!r}: must not look like an address")
    return name


S = TypeVar("S", bound=IndexSettings)


def collection_settings(settings: S, name: str) -> S:
    """``settings`` for collection ``name`` (the default one: ``settings`` itself). A
    non-default collection keeps its uploads in its own folder under the data dir, so the
    default corpus folder never picks them up."""
    if name == settings.collection:
        return settings
    check_name(name)
    return settings.model_copy(
        update={"collection": name, "corpus_dir": settings.data_dir / "corpora" / name}
    )


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    name: str
    documents: int
    chunks: int
    version: str
    default: bool


@dataclass(frozen=True, slots=True)
class Deletion:
    name: str
    chunks: int  # chunks the collection held when deleted
    chroma_collections: list[str]  # the Chroma collections dropped
    files: list[str]  # keyword-index files and the upload folder removed


@dataclass(frozen=True, slots=True)
class Scope:
    """Documents a question is limited to: sources or ids, and/or a glob over source and title.

    A document is in the scope when it is named in ``documents`` (by source path or id) or when
    ``glob`` matches its source path or its title; an empty scope is no scope."""

    documents: tuple[str, ...] = ()
    glob: str | None = None

    @property
    def empty(self) -> bool:
        return not self.documents and not self.glob

    def resolve(self, infos: Sequence[SourceInfo]) -> list[str]:
        """The source paths in scope; NotFound for a named document the collection lacks."""
        by_key = {s.source: s.source for s in infos} | {s.id: s.source for s in infos}
        chosen: set[str] = set()
        for d in self.documents:
            if d not in by_key:
                raise NotFound(f"no document {d!r} in this collection")
            chosen.add(by_key[d])
        if self.glob:
            pattern = self.glob
            for s in infos:
                if fnmatch.fnmatchcase(s.source, pattern) or fnmatch.fnmatchcase(s.title, pattern):
                    chosen.add(s.source)
        return sorted(chosen)

    def label(self) -> list[str]:
        """How the scope is shown in an answer header."""
        return [*self.documents, *([f"glob:{self.glob}"] if self.glob else [])]


class Collections:
    """The collections of one Chroma (embedded or server), and an ``Index`` for each.

    ``settings.collection`` is the default collection: it always exists (it is created on first
    ingest, as before) and cannot be deleted. Others are created explicitly, so a typo in a
    question's collection is a 404 rather than a new, empty collection.
    """

    # How long an existence check is trusted (seconds): a collection deleted by another process
    # stops answering here within this time.
    exists_ttl: float = 2.0

    def __init__(
        self,
        settings: IndexSettings,
        *,
        embedder: Embedder | None = None,
        default: Index | None = None,
    ) -> None:
        self.settings = settings
        self.default_name = settings.collection
        self._embedder = embedder
        self._client: Any = None
        self._lock = threading.RLock()
        self._indexes: dict[str, Index] = {}
        if default is not None:
            self._indexes[self.default_name] = default
        self._seen: dict[str, float] = {}
        self._sources: dict[str, tuple[tuple[str, str], list[SourceInfo]]] = {}

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.settings)
        return self._client

    def settings_for(self, name: str) -> IndexSettings:
        return collection_settings(self.settings, name)

    def corpus_dir(self, name: str) -> Path:
        return self.settings_for(name).corpus_dir

    # Listing ------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every collection, the default first (listed even before its first ingest)."""
        with unavailable(self.settings):
            found = self.client.list_collections()
        names = set()
        for c in found:
            name = c if isinstance(c, str) else c.name
            if name.endswith(_REGISTRY):
                meta = getattr(c, "metadata", None) or {}
                if meta.get("kind", "groundqa-registry") == "groundqa-registry":
                    names.add(name[: -len(_REGISTRY)])
        names.discard(self.default_name)
        return [self.default_name, *sorted(names)]

    def exists(self, name: str) -> bool:
        if name == self.default_name:
            return True
        now = time.monotonic()
        with self._lock:
            if now - self._seen.get(name, -1e9) < self.exists_ttl:
                return True
        try:
            with unavailable(self.settings):
                self.client.get_collection(f"{name}{_REGISTRY}", embedding_function=None)
        except GroundQAError:
            raise
        except Exception as exc:
            if _missing(exc):
                with self._lock:
                    self._seen.pop(name, None)
                return False
            raise
        with self._lock:
            self._seen[name] = now
        return True

    def info(self, name: str) -> CollectionInfo:
        index = self.index(name)
        infos = index.sources()
        return CollectionInfo(
            name=name,
            documents=len(infos),
            chunks=sum(s.chunks for s in infos),
            version=index._current_pointer(fresh=True).version,
            default=name == self.default_name,
        )

    # Routing ------------------------------------------------------------------------------

    def index(self, name: str | None = None) -> Index:
        """The ``Index`` of an existing collection (the default when ``name`` is None)."""
        name = self.default_name if name is None else name
        check_name(name)
        if not self.exists(name):
            raise CollectionNotFound(name)
        with self._lock:
            index = self._indexes.get(name)
            if index is None:
                embedder = self._embedder
                if embedder is None and self.default_name in self._indexes:
                    # One embedding model per process, whatever the number of collections.
                    embedder = self._indexes[self.default_name].embedder
                index = Index(self.settings_for(name), embedder=embedder)
                self._indexes[name] = index
            return index

    def sources(self, name: str | None = None) -> list[SourceInfo]:
        """The documents of a collection, memoized per version stamp: scoped questions resolve
        their scope against this on every request."""
        index = self.index(name)
        version = index._current_pointer().version
        key = (index.settings.collection, version)
        with self._lock:
            hit = self._sources.get(index.settings.collection)
        if hit is not None and hit[0] == key:
            return hit[1]
        infos = index.sources()
        with self._lock:
            self._sources[index.settings.collection] = (key, infos)
        return infos

    # Changes ------------------------------------------------------------------------------

    def create(self, name: str) -> bool:
        """Create an empty collection; False when it already existed."""
        check_name(name)
        existed = self.exists(name) and name != self.default_name
        with unavailable(self.settings):
            self.client.get_or_create_collection(
                f"{name}{_REGISTRY}",
                embedding_function=None,
                metadata={"version": "", "kind": "groundqa-registry"},
            )
        with self._lock:
            self._seen[name] = time.monotonic()
        return not existed

    def delete(self, name: str) -> Deletion:
        """Drop everything collection ``name`` holds: its Chroma collections, its keyword
        files and its upload folder. Nothing of another collection is touched: Chroma names
        are matched exactly (``<name>-registry``, ``<name>-<12 hex>``), never by prefix."""
        check_name(name)
        if name == self.default_name:
            raise ConfigError(f"{name!r} is the default collection and cannot be deleted")
        index = self.index(name)
        with index._writing():  # an ingest of this process into it finishes first
            chunks = index.count()
            with unavailable(self.settings):
                found = self.client.list_collections()
            all_names = [c if isinstance(c, str) else c.name for c in found]
            physical = [
                n
                for n in all_names
                if n.startswith(f"{name}-") and _PHYSICAL.search(n) and len(n) == len(name) + 13
            ]
            dropped: list[str] = []
            files: list[str] = []
            for n in physical:
                path = index._keyword_path(n)
                with unavailable(self.settings):
                    _drop(self.client, n)
                dropped.append(n)
                if path.exists():
                    shutil.rmtree(path)
                    files.append(str(path))
            with unavailable(self.settings):
                _drop(self.client, f"{name}{_REGISTRY}")
            dropped.append(f"{name}{_REGISTRY}")
            folder = self.corpus_dir(name)
            if folder.is_dir():
                shutil.rmtree(folder)
                files.append(str(folder))
        with self._lock:
            self._indexes.pop(name, None)
            self._seen.pop(name, None)
            self._sources.pop(name, None)
        log.info("deleted collection %s (%d chunks)", name, chunks)
        return Deletion(name=name, chunks=chunks, chroma_collections=dropped, files=files)


def _drop(client: Any, name: str) -> None:
    try:
        client.delete_collection(name)
    except Exception as exc:
        if not _missing(exc):
            raise


def _missing(exc: BaseException) -> bool:
    return "does not exist" in str(exc).lower() or type(exc).__name__ == "NotFoundError"
