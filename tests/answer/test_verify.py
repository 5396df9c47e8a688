"""The verifier on hand-written drafts over real passages of the default corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.embedding import Embedder
from service.evidence import SentenceStore
from service.result import Passage
from service.verify import verify

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
SOURCE = "000_e8b04126fa046505.txt"


def _passage(text: str, needle: str, source: str = SOURCE) -> Passage:
    """The paragraph of ``text`` that contains ``needle``, with its real document offsets."""
    start = text.index(needle)
    start = text.rfind("\n\n", 0, start) + 2
    end = text.find("\n\n", start)
    return Passage(
        source=source,
        title=text.splitlines()[0],
        chunk_id=f"{source}:{start}",
        start=start,
        end=end,
        text=text[start:end],
        score=1.0,
    )


@pytest.fixture(scope="module")
def doc() -> str:
    return (CORPUS / SOURCE).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def passages(doc: str) -> list[Passage]:
    return [
        _passage(doc, "when the ceasefire was announced"),  # [1] Wadi Barada, four officers
        _passage(doc, "Heshmatollah Falahatpisheh"),  # [2] the lawmaker
        _passage(doc, "We have not invited them"),  # [3] Zarif
    ]


@pytest.fixture(scope="module")
def store(embedder: Embedder) -> SentenceStore:
    return SentenceStore(embedder)


def test_supported_sentences_are_kept_and_quotes_slice_the_document(
    doc: str, passages: list[Passage], store: SentenceStore
) -> None:
    draft = (
        "Russia sent four officers to access the violations of the truce [1]. "
        "Zarif said Iran had not invited the U.S. to the talks [3]."
    )
    v = verify(draft, passages, store, min_support=0.5)
    assert [c.action for c in v.checks] == ["kept", "kept"]
    assert [c.n for c in v.citations] == [1, 2]  # renumbered in order of appearance
    assert v.text.endswith("[2]") and "[3]" not in v.text
    for c in v.citations:
        assert doc[c.start : c.end] == c.quote
    assert "four officers" in v.citations[0].quote
    assert "We have not invited them" in v.citations[1].quote


def test_injected_unsupported_sentence_is_removed(
    passages: list[Passage], store: SentenceStore
) -> None:
    draft = (
        "Russia sent four officers to access the violations of the truce [1]. "
        "The ceasefire was celebrated with fireworks across Moscow and Paris [1]."
    )
    v = verify(draft, passages, store, min_support=0.5)
    assert [c.action for c in v.checks] == ["kept", "removed"]
    assert "fireworks" not in v.text
    assert len(v.citations) == 1


def test_wrong_number_is_removed_even_when_the_wording_matches(
    passages: list[Passage], store: SentenceStore
) -> None:
    draft = "Russia responded by sending five officers to access the violations of the truce [1]."
    v = verify(draft, passages, store, min_support=0.5)
    assert v.checks[0].action == "removed"
    assert "five" in (v.checks[0].reason or "")
    assert v.text == "" and v.citations == []


def test_wrong_name_is_removed(passages: list[Passage], store: SentenceStore) -> None:
    draft = "In an open session of the Iranian parliament, lawmaker Hassan Rouhani objected [2]."
    v = verify(draft, passages, store, min_support=0.5)
    assert v.checks[0].action == "removed"


def test_misattributed_or_uncited_sentence_is_repaired_to_its_real_source(
    passages: list[Passage], store: SentenceStore
) -> None:
    draft = (
        "Lawmaker Heshmatollah Falahatpisheh said no foreign military bases can be established "
        "on Iranian soil [3]. Zarif said they had not invited the U.S."
    )
    v = verify(draft, passages, store, min_support=0.5)
    assert [c.action for c in v.checks] == ["repaired", "repaired"]
    assert [c.chunk_id for c in v.citations] == [passages[1].chunk_id, passages[2].chunk_id]
    assert v.text.count("[1]") == 1 and v.text.count("[2]") == 1


def test_out_of_range_citation_is_never_kept(passages: list[Passage], store: SentenceStore) -> None:
    v = verify("Iran balked at the ceasefire [7].", passages, store, min_support=0.5)
    assert v.checks[0].action in ("repaired", "removed")
    assert all(1 <= c.n <= len(passages) for c in v.citations)
    assert "[7]" not in v.text
