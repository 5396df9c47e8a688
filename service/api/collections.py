"""Collections over HTTP: which one a request asks, what a key may see, and their routes.

- A request names its collection (``collection``, or ``model`` on the OpenAI endpoint); none
  means the default collection (``GROUNDQA_COLLECTION``).
- ``GROUNDQA_KEY_COLLECTIONS`` limits keys to some collections. A collection outside the
  caller's set is answered exactly like one that does not exist (404, same body), so a key
  cannot learn which names exist. Listing shows only the caller's collections; creating and
  deleting need a key without limits (a limited key gets 403 for create, and 404 for a delete
  outside its set, for the same reason).
- A filter (document sources or ids, and/or a glob over source paths and titles) is resolved
  against the collection's manifest, and retrieval is limited to it before ranking.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from index import Index
from index.collections import (
    CollectionNotFound,
    Collections,
    Scope,
    check_name,
    collection_settings,
)
from service.api.corpus import Corpus
from service.api.schemas import ScopeFilter
from service.settings import Settings


class Access:
    """Which collections each principal may use (``key1``... as KeyChecker names them)."""

    def __init__(self, key_collections: dict[str, list[str]]) -> None:
        self._sets = {k: frozenset(v) for k, v in key_collections.items()}

    def restricted(self, principal: str) -> bool:
        return principal in self._sets

    def allows(self, principal: str, name: str) -> bool:
        allowed = self._sets.get(principal)
        return allowed is None or name in allowed


@dataclass(frozen=True, slots=True)
class Target:
    """What one question is asked against."""

    index: Index
    sources: list[str] | None  # None: the whole collection


class Catalog:
    """The app's collections, each with its ``Index`` and its upload folder."""

    def __init__(self, settings: Settings, default: Index, corpus: Corpus | None = None) -> None:
        self.settings = settings
        self.collections = Collections(settings, default=default)
        self.access = Access(settings.key_collections)
        # The default collection's Corpus is the one the UI also uses: one lock per folder.
        self._corpora: dict[str, Corpus] = {settings.collection: corpus} if corpus else {}
        self._lock = threading.Lock()

    @property
    def default_name(self) -> str:
        return self.collections.default_name

    def name_for(self, principal: str, name: str | None) -> str:
        """The collection ``principal`` asks for; CollectionNotFound when it may not see it."""
        name = self.default_name if name is None else check_name(name)
        if not self.access.allows(principal, name) or not self.collections.exists(name):
            raise CollectionNotFound(name)
        return name

    def index(self, principal: str, name: str | None) -> Index:
        return self.collections.index(self.name_for(principal, name))

    def corpus(self, principal: str, name: str | None) -> Corpus:
        name = self.name_for(principal, name)
        index = self.collections.index(name)
        with self._lock:
            corpus = self._corpora.get(name)
            if corpus is None or corpus.index is not index:
                settings = collection_settings(self.settings, name)
                corpus = self._corpora[name] = Corpus(settings, index)
            return corpus

    def target(self, principal: str, name: str | None, filter: ScopeFilter | None) -> Target:
        name = self.name_for(principal, name)
        index = self.collections.index(name)
        scope = Scope(tuple(filter.documents), filter.glob) if filter is not None else Scope()
        if scope.empty:
            return Target(index, None)
        return Target(index, scope.resolve(self.collections.sources(name)))

    def visible(self, principal: str) -> list[str]:
        return [n for n in self.collections.names() if self.access.allows(principal, n)]
