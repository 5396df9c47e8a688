"""Step 5: keep only draft sentences their cited passage supports; renumber the citations.

A sentence's support by a passage is the best, over that passage's sentences (and pairs of
adjacent sentences), of embedding similarity blended with how many of the draft sentence's
content words the span contains. Numbers and names the sentence asserts must occur in the
passage. An uncited or unsupported sentence is re-attached to a passage that supports it
when one does ("repaired"), else removed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from service import text as tx
from service.evidence import ChunkSentences, SentenceStore
from service.result import Citation, Passage, SentenceCheck

W_SIM = 0.5  # the rest is content-word coverage


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


def _support(
    sent_vec: np.ndarray,
    sent_stems: set[str],
    sent_names: Sequence[str],
    cs: ChunkSentences,
    accept: Callable[[int, int], bool] | None = None,
) -> _Support | None:
    if not cs.spans:
        return None
    sims = cs.vectors @ sent_vec
    best: _Support | None = None
    n = len(cs.spans)
    for i in range(n):
        for j in (i, i + 1):
            if j >= n or (accept is not None and not accept(cs.spans[i][0], cs.spans[j][1])):
                continue
            stems = cs.stems[i] | cs.stems[j]
            names = cs.names[i] + cs.names[j]
            cov = _coverage(sent_stems, sent_names, stems, names)
            sim = float(sims[i]) if i == j else float(max(sims[i], sims[j]))
            # a pair must earn its second sentence
            score = W_SIM * sim + (1 - W_SIM) * cov - (0.05 if i != j else 0.0)
            if best is None or score > best.score:
                best = _Support(score, cs.spans[i][0], cs.spans[j][1])
    return best


def _coverage(
    stems: set[str], names: Sequence[str], span_stems: frozenset[str], span_names: Sequence[str]
) -> float:
    if not stems:
        return 1.0
    hit = sum(
        1
        for s in stems
        if s in span_stems or (s in names and any(tx.entity_match(s, n) for n in span_names))
    )
    return hit / len(stems)


def facts_missing(sentence: str, passage_text: str) -> list[str]:
    """Numbers and names in ``sentence`` that ``passage_text`` never mentions."""
    numbers, names = tx.facts(sentence)
    lower = passage_text.lower().replace(",", "")
    passage_words = {w.lower() for w, _, _ in tx.words(passage_text)}
    passage_names = [w for w, _, _ in tx.words(passage_text) if w[:1].isupper()]
    missing = [n for n in numbers if not re.search(rf"(?<![\d.]){re.escape(n)}(?![\d])", lower)]
    for name in names:
        if name.lower() in passage_words or any(tx.entity_match(name, p) for p in passage_names):
            continue
        missing.append(name)
    return missing


def verify(
    draft: str,
    passages: Sequence[Passage],
    store: SentenceStore,
    *,
    min_support: float,
) -> Verified:
    """Check every sentence of ``draft`` (citing ``[n]`` for ``passages[n-1]``) and renumber."""
    parts = tx.split_citations(draft)
    if not parts:
        return Verified("", [], [], 0.0)
    chunks = store.get_many(passages)
    # Sentences quoted verbatim already have vectors; only paraphrases are embedded.
    known: dict[str, np.ndarray] = {}
    for p, cs in zip(passages, chunks, strict=True):
        for k, (s, e) in enumerate(cs.spans):
            known.setdefault(p.text[s:e].strip(), cs.vectors[k])
    todo = [t for t, _ in parts if t.strip() not in known]
    if todo:
        for t, v in zip(todo, store.embedder.encode(todo), strict=True):
            known[t.strip()] = np.asarray(v, dtype=np.float32)

    checks: list[SentenceCheck] = []
    kept: list[tuple[str, list[tuple[int, _Support]]]] = []
    for sentence, cites in parts:
        vec = known[sentence.strip()]
        stems = set(tx.content_stems(sentence))
        names = [tx.stem(w) for w, _, _ in tx.words(sentence) if w[:1].isupper()]

        def judged(
            pi: int,
            sentence: str = sentence,
            vec: np.ndarray = vec,
            stems: set[str] = stems,
            names: list[str] = names,
        ) -> tuple[_Support | None, list[str]]:
            text = passages[pi].text
            missing = facts_missing(sentence, text)
            sup = None
            if not missing:
                # Quote the span that states the sentence's numbers and names, when one does.
                sup = _support(
                    vec,
                    stems,
                    names,
                    chunks[pi],
                    lambda a, b: not facts_missing(sentence, text[a:b]),
                )
            return sup or _support(vec, stems, names, chunks[pi]), missing

        valid = [n for n in cites if 1 <= n <= len(passages)]
        good: list[tuple[int, _Support]] = []
        reasons: list[str] = []
        best_seen = 0.0
        for n in valid:
            sup, missing = judged(n - 1)
            score = sup.score if sup else 0.0
            best_seen = max(best_seen, score)
            if sup is None or score < min_support:
                reasons.append(f"[{n}] support {score:.2f} < {min_support:.2f}")
            elif missing:
                reasons.append(f"[{n}] does not mention {', '.join(sorted(missing)[:3])}")
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
        # Repair: the passage that does support the sentence, if any.
        best: tuple[int, _Support] | None = None
        for pi in range(len(passages)):
            sup, missing = judged(pi)
            if (
                sup is not None
                and not missing
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
        text=" ".join(out_sentences),
        citations=citations,
        checks=checks,
        support=float(np.mean(kept_scores)) if kept_scores else 0.0,
        kept=final_kept,
    )


def _clip(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


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
    return Verified(text=" ".join(out), citations=citations, checks=checks, support=0.0, kept=kept)
