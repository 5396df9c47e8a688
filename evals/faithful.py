"""Faithfulness of a final answer, scored independently with the verifier's own scorer.

Each sentence of the answer the user sees is re-checked against the quotes it cites (and only
those): it is faithful when the verifier would keep it as it stands. This is computed on the
final answer, separately from what the verifier removed from the draft.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.result import Answer, Passage

# Number of faithful sentences in an answer.
Judge = Callable[[Answer], int]


def verifier_judge(embedder: Any, min_support: float, support: Any = None) -> Judge:
    """A judge built on ``service.verify.verify`` and the support model (the shared one unless
    ``support`` is given); raises ImportError when they are absent."""
    from service.evidence import SentenceStore
    from service.support import shared_support
    from service.verify import verify

    scorer = support if support is not None else shared_support()

    store = SentenceStore(embedder)

    def judge(answer: Answer) -> int:
        if answer.abstained or not answer.citations:
            return 0
        by_n = {c.n: c for c in answer.citations}
        # verify() reads [n] as passages[n - 1]: lay the quotes out at their own numbers, with
        # empty passages in any gap so a dangling marker is judged unsupported, as it should be.
        passages = []
        for n in range(1, max(by_n) + 1):
            c = by_n.get(n)
            passages.append(
                Passage(
                    source=c.source if c else "",
                    title=c.title if c else "",
                    chunk_id=f"{c.chunk_id}@{c.start}" if c else f"missing-{n}",
                    start=c.start if c else 0,
                    end=c.end if c else 0,
                    text=c.quote if c else "",
                    score=c.support if c else 0.0,
                    page=c.page if c else None,
                )
            )
        checked = verify(answer.answer, passages, store, scorer, min_support=min_support)
        return sum(1 for s in checked.checks if s.action == "kept")

    return judge
