"""Step 5, extractive: quote the sentences that hold the reader's span, each with ``[n]``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from service.evidence import Evidence, EvidenceScorer, Sentence, hit_of
from service.reader import Reader, Reading, read_evidence
from service.result import Passage

MAX_LIST_SENTENCES = 4


@dataclass(slots=True)
class Draft:
    text: str
    sentences: list[Sentence]
    short_answer: str | None


def compose_read(ev: Evidence, readings: Sequence[Reading]) -> Draft:
    """The extractive draft from the reader: for each part of the question (one, unless it
    is compound), the sentences holding the reader's best span, quoted with ``[n]``; for a
    list question, also the sentences of the other passages where the reader found an answer.
    The short answer is the span itself (the parts' spans joined by "; ")."""
    chosen: list[Sentence] = []
    seen: set[str] = set()

    def add(sentences: Sequence[Sentence]) -> None:
        for s in sentences:
            key = s.text.strip().lower()
            if key not in seen:  # the same sentence in an overlapping chunk
                seen.add(key)
                chosen.append(s)

    spans = []
    for r in readings:
        best = r.best()
        if best is None:
            continue
        add(best.sentences)
        spans.append(best.text)
    if ev.question.wants_list and len(readings) == 1:
        for f in readings[0].found[1:]:
            if len(chosen) >= MAX_LIST_SENTENCES:
                break
            if f.span.margin > 0:  # the reader found an answer there too
                add(f.sentences)
    if not chosen:
        return Draft(text="", sentences=[], short_answer=None)
    ordered = sorted(chosen, key=lambda s: (s.passage, s.start))
    # one quote a line: the verifier splits the draft into sentences, and a quote without a
    # full stop (a byline, "This article was translated by The Syrian Observer") would merge
    # with the next one and be checked against the wrong passage
    text = "\n".join(f"{s.text} [{s.passage + 1}]" for s in ordered)
    short = "; ".join(dict.fromkeys(x for x in spans if x)) or None
    return Draft(text=text, sentences=chosen, short_answer=short)


class ExtractiveDrafter:
    """The default :class:`~service.protocols.Drafter`: needs no LLM, only our own models."""

    def __init__(self, scorer: EvidenceScorer, reader: Reader, read_k: int) -> None:
        self.scorer = scorer
        self.reader = reader
        self.read_k = read_k

    def draft(self, question: str, passages: Sequence[Passage]) -> Iterator[str]:
        ev = self.scorer.score(question, [hit_of(p) for p in passages])
        yield compose_read(ev, [read_evidence(self.reader, question, ev, self.read_k)]).text
