"""Step 5: keep only draft sentences their cited passage supports; renumber the citations.

A sentence's support by a passage is the support model's probability (:mod:`service.support`)
that the best of the passage's sentences, or pairs of adjacent sentences, supports it; a
sentence quoted verbatim is supported by the span it quotes without asking the model.
Numbers and names the sentence asserts must also occur in the passage. An uncited or
unsupported sentence is re-attached to a passage that supports it when one does
("repaired"), else removed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from service import text as tx
from service.evidence import ChunkSentences, SentenceStore
from service.result import Citation, Passage, SentenceCheck

PAIR_COST = 0.05  # a pair of sentences must beat its best single sentence by this much


class SupportScorer(Protocol):
    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray: ...


@dataclass(slots=True)
class Verified:
    text: str  # kept sentences with renumbered [n]; "" when nothing survived
    citations: list[Citation]
    checks: list[SentenceCheck]
    support: float  # mean support of the kept sentences (0 when none)
    kept: list[tuple[str, list[int]]] = field(default_factory=list)


@dataclass(slots=True)
class _Support:
    score: float
    start: int  # offsets in the passage text
    end: int


def _candidates(cs: ChunkSentences) -> list[tuple[int, int, bool]]:
    """Each sentence and each pair of adjacent sentences: (start, end, is_pair)."""
    n = len(cs.spans)
    out = [(cs.spans[i][0], cs.spans[i][1], False) for i in range(n)]
    out += [(cs.spans[i][0], cs.spans[i + 1][1], True) for i in range(n - 1)]
    return out


def _norm(text: str) -> str:
    return " ".join(text.split()).strip().rstrip(".!?").lower()


def _support(
    sentence: str, text: str, cs: ChunkSentences, support: SupportScorer, facts_too: bool
) -> _Support | None:
    """The span of ``text`` that best supports ``sentence``. With ``facts_too``, spans that
    leave one of the sentence's numbers or names unmentioned are passed over when another
    span states them all (so the quote shows the figure it is cited for)."""
    cands = _candidates(cs)
    if not cands:
        return None
    claim = _norm(sentence)
    words = len(claim.split())
    for a, b, _ in sorted(cands, key=lambda c: c[1] - c[0]):
        span = _norm(text[a:b])
        # Quoted verbatim (the extractive answer): nothing to judge. A short piece of a
        # sentence ("It includes:") is not a quote of it; the model judges those.
        if claim and claim in span and words >= max(4, len(span.split()) // 2):
            return _Support(1.0, a, b)
    if facts_too:
        stating = [c for c in cands if not facts_missing(sentence, text[c[0] : c[1]])]
        cands = stating or cands
    probs = support.score([(text[a:b], sentence) for a, b, _ in cands])
    scored = [
        (float(p) - (PAIR_COST if pair else 0.0), a, b)
        for p, (a, b, pair) in zip(probs, cands, strict=True)
    ]
    best = max(scored)
    return _Support(max(0.0, best[0]), best[1], best[2])


# A phrase of two or more words in quotation marks: the sentence claims these exact words.
_QUOTED = re.compile(r"[\"“”]([^\"“”]*\s[^\"“”]*)[\"“”]")


def _squash(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def facts_missing(sentence: str, passage_text: str) -> list[str]:
    """Numbers, names and quoted phrases in ``sentence`` that ``passage_text`` never
    mentions (a quotation must be there word for word, punctuation and case aside)."""
    numbers, names = tx.facts(sentence)
    squashed = _squash(passage_text)
    quotes = [q for q in _QUOTED.findall(sentence) if _squash(q) not in squashed]
    lower = passage_text.lower().replace(",", "")
    passage_words = {w.lower() for w, _, _ in tx.words(passage_text)}
    passage_names = [w for w, _, _ in tx.words(passage_text) if w[:1].isupper()]
    missing = [n for n in numbers if not re.search(rf"(?<![\d.]){re.escape(n)}(?![\d])", lower)]
    for name in names:
        if name.lower() in passage_words or any(tx.entity_match(name, p) for p in passage_names):
            continue
        missing.append(name)
    return missing + [f'"{q}"' for q in quotes]


def verify(
    draft: str,
    passages: Sequence[Passage],
    store: SentenceStore,
    support: SupportScorer,
    *,
    min_support: float,
) -> Verified:
    """Check every sentence of ``draft`` (citing ``[n]`` for ``passages[n-1]``) and renumber."""
    parts = tx.split_citations(draft)
    if not parts:
        return Verified("", [], [], 0.0)
    chunks = store.get_many(passages)

    checks: list[SentenceCheck] = []
    kept: list[tuple[str, list[tuple[int, _Support]]]] = []
    for sentence, cites in parts:
        memo: dict[int, tuple[_Support | None, list[str]]] = {}

        def judged(
            pi: int,
            sentence: str = sentence,
            memo: dict[int, tuple[_Support | None, list[str]]] = memo,
        ) -> tuple[_Support | None, list[str]]:
            if pi not in memo:
                text = passages[pi].text
                missing = facts_missing(sentence, text)
                memo[pi] = (
                    _support(sentence, text, chunks[pi], support, facts_too=not missing),
                    missing,
                )
            return memo[pi]

        valid = [n for n in cites if 1 <= n <= len(passages)]
        good: list[tuple[int, _Support]] = []
        reasons: list[str] = []
        best_seen = 0.0
        for n in valid:
            sup, missing = judged(n - 1)
            score = sup.score if sup else 0.0
            best_seen = max(best_seen, score)
            if missing:  # the more telling reason, whatever the model's score
                reasons.append(f"[{n}] does not mention {', '.join(sorted(missing)[:3])}")
            elif sup is None or score < min_support:
                reasons.append(f"[{n}] support {score:.2f} < {min_support:.2f}")
            else:
                good.append((n - 1, sup))
        if good:
            kept.append((sentence, good))
            checks.append(
                SentenceCheck(
                    text=sentence,
                    citations=cites,
                    support=_clip(max(s.score for _, s in good)),
                    action="kept",
                    reason=None,
                )
            )
            continue
        if not cites:
            reasons.append("no citation")
        elif len(valid) < len(cites):
            reasons.append("citation out of range")
        # Repair: the passage that does support the sentence, if any. Passages that do not
        # mention the sentence's numbers and names cannot, so the model is not asked.
        best: tuple[int, _Support] | None = None
        for pi in range(len(passages)):
            if facts_missing(sentence, passages[pi].text):
                continue
            sup, _ = judged(pi)
            if (
                sup is not None
                and sup.score >= min_support
                and (best is None or sup.score > best[1].score)
            ):
                best = (pi, sup)
        if best is not None:
            kept.append((sentence, [best]))
            checks.append(
                SentenceCheck(
                    text=sentence,
                    citations=cites,
                    support=_clip(best[1].score),
                    action="repaired",
                    reason="; ".join(reasons),
                )
            )
        else:
            checks.append(
                SentenceCheck(
                    text=sentence,
                    citations=cites,
                    support=_clip(best_seen),
                    action="removed",
                    reason="; ".join(reasons) or "unsupported",
                )
            )

    # Renumber in order of first appearance; one citation per passage spanning its quotes.
    number: dict[int, int] = {}
    spans: dict[int, tuple[int, int, float]] = {}
    out_sentences: list[str] = []
    final_kept: list[tuple[str, list[int]]] = []
    for sentence, good in kept:
        ns = []
        for pi, sup in good:
            if pi not in number:
                number[pi] = len(number) + 1
            s0, e0, best_support = spans.get(pi, (sup.start, sup.end, 0.0))
            spans[pi] = (min(s0, sup.start), max(e0, sup.end), max(best_support, sup.score))
            ns.append(number[pi])
        ns = sorted(set(ns))
        final_kept.append((sentence, ns))
        out_sentences.append(sentence + " " + "".join(f"[{n}]" for n in ns))
    citations = []
    for pi, n in sorted(number.items(), key=lambda x: x[1]):
        p = passages[pi]
        s, e, strength = spans[pi]
        citations.append(
            Citation(
                n=n,
                source=p.source,
                title=p.title,
                chunk_id=p.chunk_id,
                start=p.start + s,
                end=p.start + e,
                quote=p.text[s:e],
                support=_clip(strength),
                page=p.page,
            )
        )
    kept_scores = [c.support for c in checks if c.action != "removed"]
    return Verified(
        text=join_sentences(out_sentences),
        citations=citations,
        checks=checks,
        support=float(np.mean(kept_scores)) if kept_scores else 0.0,
        kept=final_kept,
    )


def _clip(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def join_sentences(sentences: Sequence[str]) -> str:
    """Sentences (each with its markers) as one answer that splits back into the same ones.

    A sentence that does not end in a full stop (a byline, a title, a closing quotation mark)
    is followed by a line break rather than a space: otherwise the sentence splitter merges it
    with the next one when the answer is read again (by a client re-checking it, or our own
    faithfulness eval)."""
    out = sentences[0] if sentences else ""
    for before, s in itertools.pairwise(sentences):
        out += (" " if tx.strip_citations(before)[-1:] in ".!?" else "\n") + s
    return out


def unverified(draft: str, passages: Sequence[Passage]) -> Verified:
    """The draft as written, with its in-range citations renumbered (verification switched off).

    Each citation quotes its whole passage, since nothing established which span supports what.
    """
    number: dict[int, int] = {}
    out: list[str] = []
    checks: list[SentenceCheck] = []
    kept: list[tuple[str, list[int]]] = []
    for sentence, cites in tx.split_citations(draft):
        ns = []
        for n in cites:
            if 1 <= n <= len(passages):
                number.setdefault(n - 1, len(number) + 1)
                ns.append(number[n - 1])
        ns = sorted(set(ns))
        kept.append((sentence, ns))
        out.append(sentence + (" " + "".join(f"[{n}]" for n in ns) if ns else ""))
        checks.append(
            SentenceCheck(
                text=sentence,
                citations=cites,
                support=0.0,
                action="kept",
                reason="verification off",
            )
        )
    citations = [
        Citation(
            n=n,
            source=passages[pi].source,
            title=passages[pi].title,
            chunk_id=passages[pi].chunk_id,
            start=passages[pi].start,
            end=passages[pi].end,
            quote=passages[pi].text,
            support=0.0,
            page=passages[pi].page,
        )
        for pi, n in sorted(number.items(), key=lambda x: x[1])
    ]
    return Verified(
        text=join_sentences(out), citations=citations, checks=checks, support=0.0, kept=kept
    )
