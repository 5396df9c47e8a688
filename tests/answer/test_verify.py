"""The verifier on hand-written drafts over real passages of the default corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.embedding import Embedder
from index.settings import IndexSettings
from service import text as tx
from service.evidence import SentenceStore
from service.result import Passage
from service.support import Support, shared_support
from service.verify import join_sentences, verify

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
def support() -> Support:
    settings = IndexSettings()  # as the service runs it
    return shared_support(precision=settings.precision, cache_dir=settings.model_cache_dir)


@pytest.fixture(scope="module")
def store(embedder: Embedder) -> SentenceStore:
    return SentenceStore(embedder)


def test_supported_sentences_are_kept_and_quotes_slice_the_document(
    doc: str, passages: list[Passage], store: SentenceStore, support: Support
) -> None:
    draft = (
        "Russia sent four officers to access the violations of the truce [1]. "
        "Zarif said Iran had not invited the U.S. to the talks [3]."
    )
    v = verify(draft, passages, store, support, min_support=0.5)
    assert [c.action for c in v.checks] == ["kept", "kept"]
    assert [c.n for c in v.citations] == [1, 2]  # renumbered in order of appearance
    assert v.text.endswith("[2]") and "[3]" not in v.text
    for c in v.citations:
        assert doc[c.start : c.end] == c.quote
    assert "four officers" in v.citations[0].quote
    assert "We have not invited them" in v.citations[1].quote


def test_injected_unsupported_sentence_is_removed(
    passages: list[Passage], store: SentenceStore, support: Support
) -> None:
    draft = (
        "Russia sent four officers to access the violations of the truce [1]. "
        "The ceasefire was celebrated with fireworks across Moscow and Paris [1]."
    )
    v = verify(draft, passages, store, support, min_support=0.5)
    assert [c.action for c in v.checks] == ["kept", "removed"]
    assert "fireworks" not in v.text
    assert len(v.citations) == 1


def test_wrong_number_is_removed_even_when_the_wording_matches(
    passages: list[Passage], store: SentenceStore, support: Support
) -> None:
    draft = "Russia responded by sending five officers to access the violations of the truce [1]."
    v = verify(draft, passages, store, support, min_support=0.5)
    assert v.checks[0].action == "removed"
    assert "five" in (v.checks[0].reason or "")
    assert v.text == "" and v.citations == []


def test_wrong_name_is_removed(
    passages: list[Passage], store: SentenceStore, support: Support
) -> None:
    draft = "In an open session of the Iranian parliament, lawmaker Hassan Rouhani objected [2]."
    v = verify(draft, passages, store, support, min_support=0.5)
    assert v.checks[0].action == "removed"


def test_misattributed_or_uncited_sentence_is_repaired_to_its_real_source(
    passages: list[Passage], store: SentenceStore, support: Support
) -> None:
    draft = (
        "Lawmaker Heshmatollah Falahatpisheh said no foreign military bases can be established "
        "on Iranian soil [3]. Zarif said they had not invited the U.S."
    )
    v = verify(draft, passages, store, support, min_support=0.5)
    assert [c.action for c in v.checks] == ["repaired", "repaired"]
    assert [c.chunk_id for c in v.citations] == [passages[1].chunk_id, passages[2].chunk_id]
    assert v.text.count("[1]") == 1 and v.text.count("[2]") == 1


def test_out_of_range_citation_is_never_kept(
    passages: list[Passage], store: SentenceStore, support: Support
) -> None:
    v = verify("Iran balked at the ceasefire [7].", passages, store, support, min_support=0.5)
    assert v.checks[0].action in ("repaired", "removed")
    assert all(1 <= c.n <= len(passages) for c in v.citations)
    assert "[7]" not in v.text


# The four kinds of wrong, cited sentence SmolLM2 wrote on plain questions about the default
# corpus (issue 9): the support model must remove each, while a faithful paraphrase stays.
OTHER = "002_3e6e483da8deb930.txt"


@pytest.fixture(scope="module")
def more(doc: str) -> list[Passage]:
    other = (CORPUS / OTHER).read_text(encoding="utf-8")
    return [
        _passage(doc, "as Iran attempts to take control of the water source"),  # [1]
        _passage(other, "importing droves of Shiite fighters", source=OTHER),  # [2]
    ]


@pytest.mark.parametrize(
    "draft",
    [
        # the question echoed back as the answer
        "From which countries did Iran bring Shiite fighters into Syria? [2]",
        # an empty fragment
        "It includes: [2]",
        # an invented cause, cited to a sentence that gives another: this version of the
        # support model keeps it (0.82; see its model card), so it is expected to fail
        pytest.param(
            "The assaults in Wadi Barada are a direct response to the recent ceasefire [1].",
            marks=pytest.mark.xfail(strict=True, reason="known miss of the support model"),
        ),
        # a quote the passage does not contain
        'Tehran said it "will never leave Syria" [2].',
    ],
)
def test_wrong_cited_sentences_are_removed(
    draft: str, more: list[Passage], store: SentenceStore, support: Support
) -> None:
    v = verify(draft, more, store, support, min_support=0.5)
    assert [c.action for c in v.checks] == ["removed"], v.checks
    assert v.text == ""


@pytest.mark.parametrize(
    "draft",
    [
        "Iran is trying to take control of Damascus's water source in the Wadi Barada valley [1].",
        "Iran brought Shiite fighters into Syria from Lebanon, Iraq and Afghanistan [2].",
    ],
)
def test_faithful_paraphrases_are_kept(
    draft: str, more: list[Passage], store: SentenceStore, support: Support
) -> None:
    v = verify(draft, more, store, support, min_support=0.5)
    assert [c.action for c in v.checks] == ["kept"], v.checks
    assert v.citations and v.citations[0].support >= 0.5


def test_joined_sentences_split_back_into_the_same_ones() -> None:
    kept = [
        "This article was translated and edited by The Syrian Observer [1]",
        "According to the Middle East Monitor, differences have surfaced. [2]",
        "Zarif said, “We are against their presence.” [3]",
        "Russia sent four officers. [1]",
    ]
    joined = join_sentences(kept)
    # a line break only where the sentence does not end in its own full stop
    assert joined.count("\n") == 2 and joined.startswith(kept[0] + "\n")
    assert [s for s, _ in tx.split_citations(joined)] == [tx.strip_citations(k) for k in kept]
    assert join_sentences([]) == ""
