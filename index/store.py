"""Chroma: the one place that picks the backend, and the registry saying which collection serves.

Layout for a logical collection ``C``:

- ``C-registry``: collection metadata ``{"active": <physical>, "version": <stamp>}``; one record per
  (physical collection, source) holding the source's manifest (hash, title, chunk count, pages) and
  its full text (so ``document_text`` works against a remote server too). Records carry a dummy
  1-d vector because Chroma stores nothing without one.
- ``C-<model fingerprint>``: the chunks embedded by that model; metadata records model and dims.

The active pointer moves to a new physical collection only once it is complete, so a failed
rebuild leaves the old one serving. The version stamp changes on every write, so a process can
notice that another one changed the collection and refresh its keyword index.

The embedded store serves one process: Chroma keeps each process's vector index in memory, so
vectors another process adds stay invisible to dense queries here until restart (measured with
chromadb 1.5). Processes that share an index, such as an API server and a separate
``groundqa ingest``, should share a Chroma server (``chroma_url``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from index.errors import ConfigError, GroundQAError, IndexUnavailable
from index.settings import IndexSettings

log = logging.getLogger(__name__)

Backend = Literal["embedded", "http"]
_DUMMY = [1.0]


def backend_of(settings: IndexSettings) -> Backend:
    return "http" if settings.chroma_url else "embedded"


def make_client(settings: IndexSettings) -> Any:
    """A Chroma client (embedded on ``data_dir/chroma``, or a server), telemetry off."""
    try:
        import chromadb
        from chromadb.config import Settings as ChromaSettings
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ConfigError("the vector store needs 'chromadb' installed") from exc
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    mode = backend_of(settings)
    try:
        match mode:
            case "embedded":
                path = settings.data_dir / "chroma"
                path.mkdir(parents=True, exist_ok=True)
                return chromadb.PersistentClient(
                    path=str(path),
                    settings=chroma_settings,
                    tenant=settings.chroma_tenant,
                    database=settings.chroma_database,
                )
            case "http":
                assert settings.chroma_url is not None
                url = urlsplit(settings.chroma_url)
                ssl = url.scheme == "https"
                return chromadb.HttpClient(
                    host=url.hostname or "localhost",
                    port=url.port or (443 if ssl else 8000),
                    ssl=ssl,
                    settings=chroma_settings,
                    tenant=settings.chroma_tenant,
                    database=settings.chroma_database,
                )
    except GroundQAError:
        raise
    except Exception as exc:
        where = settings.chroma_url or str(settings.data_dir / "chroma")
        raise IndexUnavailable(f"cannot open Chroma at {where}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Pointer:
    active: str | None
    version: str
    model: str | None
    dimension: int | None
    # the precisions whose vectors the active collection holds ("" when an older groundqa
    # built it and did not say)
    precisions: tuple[str, ...] = ()


class Store:
    """Typed access to the registry and physical collections of one logical collection."""

    def __init__(self, settings: IndexSettings) -> None:
        self.settings = settings
        self.name = settings.collection
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.settings)
        return self._client

    def ping(self) -> None:
        with unavailable(self.settings):
            self.client.heartbeat()

    # Registry ------------------------------------------------------------------------------

    def registry(self) -> Any:
        with unavailable(self.settings):
            return self.client.get_or_create_collection(
                f"{self.name}-registry",
                embedding_function=None,
                metadata={"version": "", "kind": "groundqa-registry"},
            )

    def pointer(self) -> Pointer:
        meta = self.registry().metadata or {}
        return Pointer(
            active=meta.get("active") or None,
            version=str(meta.get("version") or ""),
            model=meta.get("model") or None,
            dimension=int(meta["dimension"]) if meta.get("dimension") else None,
            precisions=tuple(p for p in str(meta.get("precisions") or "").split(",") if p),
        )

    def set_pointer(
        self,
        *,
        active: str | None,
        model: str | None,
        dimension: int | None,
        precisions: Sequence[str] = (),
    ) -> str:
        """Point at ``active`` and stamp a new version; returns the stamp."""
        version = uuid.uuid4().hex
        meta: dict[str, Any] = {"version": version, "kind": "groundqa-registry"}
        if active:
            meta.update(
                active=active,
                model=model or "",
                dimension=dimension or 0,
                precisions=",".join(sorted(set(precisions))),
            )
        with unavailable(self.settings):
            self.registry().modify(metadata=meta)
        return version

    def bump(self, writing: str | None = None) -> str:
        """A new stamp for the same collection; ``writing``: the precision of vectors about to
        be added to it."""
        p = self.pointer()
        return self.set_pointer(
            active=p.active,
            model=p.model,
            dimension=p.dimension,
            precisions=(*p.precisions, writing) if writing else p.precisions,
        )

    def physical_name(self, fingerprint: str) -> str:
        return f"{self.name}-{fingerprint[:12]}"

    def chunks(self, physical: str, *, model: str, dimension: int, create: bool) -> Any:
        with unavailable(self.settings):
            if create:
                return self.client.get_or_create_collection(
                    physical,
                    embedding_function=None,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={"model": model, "dimension": dimension, "kind": "groundqa-chunks"},
                )
            return self.client.get_collection(physical, embedding_function=None)

    def drop(self, physical: str) -> None:
        with unavailable(self.settings):
            try:
                self.client.delete_collection(physical)
            except Exception as exc:  # already gone is fine
                if "does not exist" not in str(exc).lower():
                    raise
            registry = self.registry()
            ids = registry.get(where={"collection": physical}, include=[])["ids"]
            for batch in batched(ids, 5000):
                registry.delete(ids=batch)

    def physical_names(self) -> list[str]:
        with unavailable(self.settings):
            names = [c if isinstance(c, str) else c.name for c in self.client.list_collections()]
        prefix = f"{self.name}-"
        return [n for n in names if n.startswith(prefix) and n != f"{self.name}-registry"]


def batched(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@contextmanager
def unavailable(settings: IndexSettings) -> Iterator[None]:
    """Map Chroma connection failures to IndexUnavailable."""
    try:
        yield
    except GroundQAError:
        raise
    except Exception as exc:
        if not _is_connection_error(exc):
            raise
        where = settings.chroma_url or str(settings.data_dir / "chroma")
        raise IndexUnavailable(f"Chroma at {where} is unavailable: {exc}") from exc


def _is_connection_error(exc: BaseException) -> bool:
    import httpx

    if isinstance(exc, httpx.TransportError | ConnectionError | TimeoutError):
        return True
    text = f"{type(exc).__name__} {exc}".lower()
    return any(s in text for s in ("could not connect", "connection refused", "connecterror"))
