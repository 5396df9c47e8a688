"""Hybrid search over the default corpus."""

from __future__ import annotations

from index import Index


def test_wadi_barada_question_finds_its_passage(default_index: Index) -> None:
    hits = default_index.search("Which valley near Damascus was attacked?", 5)
    assert hits, "search returned nothing"
    assert any("Wadi Barada" in h.chunk.text for h in hits[:3])


def test_hits_carry_exact_offsets_and_component_scores(default_index: Index) -> None:
    hits = default_index.search("Russia and Iran differ on Syria", 8)
    assert 0 < len(hits) <= 8
    for h in hits:
        text = default_index.document_text(h.chunk.source)
        assert text[h.chunk.start : h.chunk.end] == h.chunk.text
        assert h.dense_score is not None and -1.0 <= h.dense_score <= 1.0
        assert h.dense_rank is not None or h.keyword_rank is not None
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_text_sources_offsets_refer_to_the_file(default_index: Index) -> None:
    for info in default_index.sources():
        path = default_index.settings.corpus_dir / info.source
        assert default_index.document_text(info.source) == path.read_text(encoding="utf-8")


def test_containing_finds_a_name_in_any_chunk_of_the_document(default_index: Index) -> None:
    source = "000_e8b04126fa046505.txt"
    texts = default_index.containing([source], ["Aleppo"])
    assert texts and all("Aleppo" in t for t in texts)
    # case-sensitive substrings, any of several, only in the documents asked
    assert default_index.containing([source], ["aleppo"]) == []
    assert default_index.containing([source], ["Nonexistentia", "Hamadan"])
    assert default_index.containing(["no-such-document.txt"], ["Aleppo"]) == []
    assert default_index.containing([source], []) == []
