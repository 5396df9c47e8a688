"""Sentences split and embedded at ingest, stored with the chunk, used by answering as is."""

from __future__ import annotations

import numpy as np
import pytest

from index import Index
from index.embedding import Embedder
from index.sentences import SENTENCES_VERSION, pack, unpack
from service import text as tx
from service.evidence import EvidenceScorer


def test_pack_round_trip_keeps_spans_and_cosines(embedder: Embedder) -> None:
    text = "The dam was finished in 1936. It holds Lake Mead. Power goes to three states."
    _, (s,) = embedder.encode_chunks([text])
    got = unpack(pack(s))
    assert got is not None
    assert got.spans == s.spans == tuple(tx.sentence_spans(text))
    assert np.min(np.sum(got.vectors * s.vectors, axis=1)) > 0.999


@pytest.mark.parametrize(
    "value",
    [None, 3, "", "garbage", f"{SENTENCES_VERSION + 1};384;0:5;AAAA", f"{SENTENCES_VERSION};x;;"],
)
def test_unpack_refuses_what_it_cannot_trust(value: object) -> None:
    assert unpack(value) is None


def test_pooled_vectors_rank_the_sentence_the_question_is_about(embedder: Embedder) -> None:
    text = (
        "The Hoover Dam was finished in 1936 on the Colorado River. "
        "Migrating salmon cannot pass it. "
        "The city council approved a new parking garage downtown."
    )
    _, (s,) = embedder.encode_chunks([text])
    q = embedder.encode(["When was the Hoover Dam completed?"])[0]
    sims = s.vectors @ q
    assert int(np.argmax(sims)) == 0
    q2 = embedder.encode(["Where will the new car park be built?"])[0]
    assert int(np.argmax(s.vectors @ q2)) == 2


def test_sentences_past_the_model_window_are_embedded_on_their_own(embedder: Embedder) -> None:
    filler = " ".join(f"Sentence number {i} talks about rivers and dams." for i in range(60))
    text = filler + " The last sentence names the Danube delta."
    _, (s,) = embedder.encode_chunks([text])
    assert len(s.spans) == 61
    alone = embedder.encode([text[s.spans[-1][0] : s.spans[-1][1]]])[0]
    assert float(s.vectors[-1] @ alone) > 0.999  # beyond 256 tokens: its own embedding


def test_answering_uses_stored_sentences_without_embedding_them(
    default_index: Index, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    question = "Which valley near Damascus was attacked?"
    hits = default_index.search(question, 10)
    assert hits and all(unpack(h.chunk.sentences) is not None for h in hits)
    qvec = embedder.encode([question])[0]
    encoded: list[int] = []
    real = embedder.encode

    def spy(texts: list[str]) -> np.ndarray:
        encoded.append(len(texts))
        return real(texts)

    monkeypatch.setattr(embedder, "encode", spy)
    ev = EvidenceScorer(embedder).score(question, hits, qvec=qvec)
    assert encoded == []
    assert ev.sentences and ev.sentences[0].text in {
        h.chunk.text[a:b]
        for h in hits
        for a, b in unpack(h.chunk.sentences).spans  # type: ignore[union-attr]
    }
    assert any("Wadi Barada" in s.text for s in ev.sentences[:5])


def test_chunks_without_stored_sentences_are_split_at_question_time(
    default_index: Index, embedder: Embedder
) -> None:
    from dataclasses import replace

    question = "Which valley near Damascus was attacked?"
    hits = default_index.search(question, 5)
    bare = [replace(h, chunk=replace(h.chunk, sentences=None)) for h in hits]
    ev = EvidenceScorer(embedder).score(question, bare)
    assert {(s.passage, s.index) for s in ev.sentences} == {
        (i, j) for i, h in enumerate(hits) for j in range(len(tx.sentence_spans(h.chunk.text)))
    }
