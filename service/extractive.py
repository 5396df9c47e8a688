"""Step 4, model-free: answer with the best-supported sentences, quoted verbatim with ``[n]``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from service import text as tx
from service.evidence import Evidence, EvidenceScorer, Sentence, hit_of
from service.nlp import expected_labels
from service.result import Passage

# A second sentence joins the answer only when it scores almost as well as the first.
SECOND_SENTENCE_MARGIN = 0.04
LIST_MARGIN = 0.12
MAX_LIST_SENTENCES = 4


@dataclass(slots=True)
class Draft:
    text: str
    sentences: list[Sentence]
    short_answer: str | None


def choose(ev: Evidence) -> list[Sentence]:
    """The sentences the answer quotes, in score order."""
    if not ev.sentences:
        return []
    best = ev.sentences[0]
    chosen = [best]
    limit = MAX_LIST_SENTENCES if ev.question.wants_list else 2
    margin = LIST_MARGIN if ev.question.wants_list else SECOND_SENTENCE_MARGIN
    seen = {best.text.strip().lower()}
    for s in ev.sentences[1:]:
        if len(chosen) >= limit or s.score < best.score - margin:
            break
        key = s.text.strip().lower()
        if key in seen:  # the same sentence in an overlapping chunk
            continue
        seen.add(key)
        chosen.append(s)
    return _cover_parts(ev, chosen)


# How many of the best sentences may answer a later part of a compound question.
PART_CANDIDATES = 30


def _cover_parts(ev: Evidence, chosen: list[Sentence]) -> list[Sentence]:
    """Add, for each part of a compound question that the chosen sentences leave unanswered,
    the sentence that covers most of that part's key terms (at least half of them)."""
    parts = tx.compound_parts(ev.question.text)
    if len(parts) < 2:
        return chosen
    stems = {id(s): set(tx.content_stems(s.text)) for s in ev.sentences[:PART_CANDIDATES]}
    stems.update({id(s): set(tx.content_stems(s.text)) for s in chosen})
    for part in parts:
        wanted = set(tx.content_stems(part))
        if not wanted:
            continue
        covered = set().union(*(stems[id(s)] for s in chosen))
        if len(wanted & covered) * 2 >= len(wanted):
            continue
        kind = tx.answer_type(part)

        def answers(s: Sentence, wanted: set[str] = wanted, kind: tx.AnswerType = kind) -> bool:
            # holds a span of the asked-for kind that is more than the part's own words
            return any(
                set(tx.content_stems(s.text[a:b])) - wanted
                for a, b in tx.candidate_spans(s.text, kind)
            )

        candidates = [s for s in ev.sentences[:PART_CANDIDATES] if s not in chosen]
        best = max(
            candidates,
            key=lambda s: (len(wanted & stems[id(s)]) + answers(s), s.score),
            default=None,
        )
        if best is not None and len(wanted & stems[id(best)]) * 2 >= len(wanted):
            chosen.append(best)
    return chosen


# (start, end, label) of each named entity in a text, spaCy's labels
EntityFinder = Callable[[str], Sequence[tuple[int, int, str]]]


def short_answer(
    ev: Evidence, chosen: Sequence[Sentence], entities: EntityFinder | None = None
) -> str | None:
    """The answering span (name, number, date, place) nearest the question's terms, if asked.

    With ``entities``, named entities of the asked kind are the candidates (spaCy finds
    "the 10th and 11th centuries" and "Rollo" where capitalisation and number patterns cut
    spans short or run them on); the pattern spans remain the fallback."""
    if ev.question.answer_type == "other":
        return None
    terms = set(ev.question.terms)
    labels = expected_labels(ev.question.text) if entities is not None else None

    def candidates(s: Sentence) -> list[tuple[int, int]]:
        if labels is None or entities is None:
            return s.type_spans
        found = [
            (a, b)
            for a, b, label in entities(s.text)
            if label in labels
            and (ev.question.answer_type != "year" or any(c.isdigit() for c in s.text[a:b]))
        ]
        return found or s.type_spans

    def asked(word: str) -> bool:
        return tx.stem(word) in terms or any(tx.entity_match(word, e) for e in ev.question.entities)

    for s in chosen:
        # The question's own words are not the answer: "Iranian Foreign Minister Mohammad
        # Javad Zarif" answers "Who is the Iranian foreign minister?" with the name alone.
        spans = [sp for sp in (_trim(s.text, sp, asked) for sp in candidates(s)) if sp]
        if not spans:
            continue
        anchors = [(a, b) for w, a, b in tx.words(s.text) if asked(w)]
        if not anchors:
            return s.text[spans[0][0] : spans[0][1]]
        # Edge-to-edge gap, so a long span right beside the question's words wins.
        best = min(spans, key=lambda sp: min(max(0, a - sp[1], sp[0] - b) for a, b in anchors))
        return s.text[best[0] : best[1]]
    return None


def _trim(text: str, span: tuple[int, int], asked: Callable[[str], bool]) -> tuple[int, int] | None:
    """``span`` without the question's words at either edge; None when nothing else is left."""
    inside = [(a, b) for w, a, b in tx.words(text[span[0] : span[1]]) if not asked(w)]
    if not inside:
        return None
    return span[0] + inside[0][0], span[0] + inside[-1][1]


def compose(ev: Evidence, entities: EntityFinder | None = None) -> Draft:
    """The extractive draft: chosen sentences in document order, each followed by its ``[n]``."""
    chosen = choose(ev)
    ordered = sorted(chosen, key=lambda s: (s.passage, s.start))
    text = " ".join(f"{s.text} [{s.passage + 1}]" for s in ordered)
    return Draft(text=text, sentences=chosen, short_answer=short_answer(ev, chosen, entities))


class ExtractiveDrafter:
    """The default :class:`~service.protocols.Drafter`: needs no LLM, only the embedding model."""

    def __init__(self, scorer: EvidenceScorer) -> None:
        self.scorer = scorer

    def draft(self, question: str, passages: Sequence[Passage]) -> Iterator[str]:
        yield compose(self.scorer.score(question, [hit_of(p) for p in passages])).text
