"""Run an eval set through ``QA`` and turn the answers into per-item results and metrics."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from evals import metrics as m
from evals.dataset import EvalItem
from index.errors import GroundQAError
from service.result import Answer, Mode
from service.text import split_citations

# Retrieval is scored over this many fused hits of the standalone question.
RETRIEVAL_K = 10
HIT_KS = (1, 3, 5, 10)

# Counts the sentences of a final answer that the passages they cite support.
Judge = Callable[[Answer], int]


class Asker(Protocol):
    """The part of ``service.qa.QA`` the runner needs."""

    @property
    def index(self) -> Any: ...

    def ask(
        self,
        question: str,
        history: Any = (),
        *,
        mode: Mode | None = None,
        top_k: int | None = None,
        sources: Sequence[str] | None = None,
    ) -> Answer: ...


@dataclass(slots=True)
class ItemResult:
    id: str
    category: str
    question: str
    answerable: bool
    expected: str
    got: str = ""
    short_answer: str | None = None
    standalone_question: str = ""
    abstained: bool = False
    reason: str | None = None  # the pipeline's reason for abstaining
    confidence: float | None = None
    correct: bool = False
    exact_match: float = 0.0
    f1: float = 0.0
    outcome: str = "error"
    score: int = -1
    gold_rank: int | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    citations_good: int = 0
    sentences: int = 0
    sentences_cited: int = 0
    sentences_faithful: int = 0
    sentences_removed: int = 0
    # Citations of a source outside the collection asked, and outside the item's scope: both
    # must be 0 whatever the answer (collections and scopes are kept apart before ranking).
    citations_outside_collection: int = 0
    citations_outside_scope: int = 0
    scope: list[str] | None = None
    latency_ms: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_text(item: EvalItem) -> str:
    if not item.answerable:
        return "(abstain)"
    if item.required:
        return "all of: " + "; ".join(" | ".join(g) for g in item.required_groups())
    return " | ".join(item.answers)


def _identity(item: EvalItem) -> dict[str, Any]:
    """The fields of an item's result that come from the item itself."""
    return {
        "id": item.id,
        "category": item.category,
        "question": item.question,
        "answerable": item.answerable,
        "expected": expected_text(item),
    }


def score_answer(
    item: EvalItem,
    answer: Answer,
    *,
    min_support: float,
    judge: Judge | None,
    ranked_sources: Sequence[str] = (),
    latency_ms: float = 0.0,
) -> ItemResult:
    """Every per-item metric of one answer (no model calls unless ``judge`` makes them)."""
    text = m.strip_markers(answer.answer)
    r = ItemResult(
        **_identity(item),
        got=text,
        short_answer=answer.short_answer,
        standalone_question=answer.standalone_question,
        abstained=answer.abstained,
        reason=answer.reason,
        confidence=answer.confidence,
        latency_ms=latency_ms,
    )
    if item.answerable:
        r.gold_rank = m.first_gold_rank(ranked_sources, item.sources)
    if not answer.abstained:
        # Containment looks at everything shown; EM/F1 at the shortest span the system commits to.
        shown = f"{answer.short_answer or ''} {text}"
        if item.required:
            r.correct = m.contains_all(shown, item.required_groups())
        else:
            r.correct = m.contains_any(shown, item.answers)
        span = answer.short_answer or text
        golds = item.answers or [" ".join(g[0] for g in item.required_groups())]
        r.exact_match = float(m.max_exact(golds, span)) if item.answerable else 0.0
        r.f1 = m.max_f1(golds, span) if item.answerable else 0.0
    elif not item.answerable:
        r.exact_match = r.f1 = 1.0  # the official no-answer rule
    r.outcome = m.outcome(item.answerable, answer.abstained, r.correct)
    r.score = m.score(item.answerable, answer.abstained, r.correct)

    by_n = {c.n: c for c in answer.citations}
    gold = set(item.sources)
    for c in answer.citations:
        good = c.source in gold and c.support >= min_support
        r.citations_good += int(good)
        r.citations.append({"n": c.n, "source": c.source, "support": round(c.support, 3)})
    r.sentences_removed = sum(1 for s in answer.sentences if s.action == "removed")
    if not answer.abstained:
        parts = split_citations(answer.answer)
        r.sentences = len(parts)
        r.sentences_cited = sum(
            1 for _, ns in parts if any(n in by_n and by_n[n].support >= min_support for n in ns)
        )
        if judge is not None:
            r.sentences_faithful = judge(answer)
    return r


def run_items(
    qa: Asker,
    items: Iterable[EvalItem],
    *,
    min_support: float,
    judge: Judge | None,
    mode: Mode | None = None,
    on_item: Callable[[ItemResult], None] | None = None,
) -> list[ItemResult]:
    """Ask every item, in order; an error on one item is recorded and counted as wrong."""
    from index.collections import Scope

    results: list[ItemResult] = []
    infos = qa.index.sources()
    known = {s.source for s in infos}
    for item in items:
        t0 = time.perf_counter()
        scope: list[str] | None = None
        try:
            if item.scope is not None:
                scope = Scope(tuple(item.scope.documents), item.scope.glob).resolve(infos)
            answer = qa.ask(item.question, item.history, mode=mode, sources=scope)
        except GroundQAError as exc:
            r = ItemResult(
                **_identity(item),
                error=f"{type(exc).__name__}: {exc}",
                latency_ms=(time.perf_counter() - t0) * 1000,
            )
        else:
            latency = (time.perf_counter() - t0) * 1000
            ranked: list[str] = []
            if item.answerable:
                query = answer.standalone_question or item.question
                hits = qa.index.search(query, RETRIEVAL_K, sources=scope)
                ranked = [h.chunk.source for h in hits]
            r = score_answer(
                item,
                answer,
                min_support=min_support,
                judge=judge,
                ranked_sources=ranked,
                latency_ms=latency,
            )
            cited = [c.source for c in answer.citations]
            r.citations_outside_collection = sum(s not in known for s in cited)
            r.citations_outside_scope = sum(scope is not None and s not in scope for s in cited)
        r.scope = scope
        results.append(r)
        if on_item is not None:
            on_item(r)
    return results


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def aggregate(results: Sequence[ItemResult], *, faithfulness: bool = True) -> dict[str, Any]:
    """The metrics of a group of results (``None`` where the group has nothing to measure)."""
    ans = [r for r in results if r.answerable]
    unans = [r for r in results if not r.answerable]
    answered_ans = [r for r in ans if not r.abstained and r.error is None]
    answered = [r for r in results if not r.abstained and r.error is None]
    out: dict[str, Any] = {
        "items": len(results),
        "answerable": len(ans),
        "unanswerable": len(unans),
    }
    for k in HIT_KS:
        out[f"retrieval.hit@{k}"] = m.mean(m.hit_at_k(r.gold_rank, k) for r in ans)
    out["retrieval.mrr"] = m.mean(m.reciprocal_rank(r.gold_rank) for r in ans)
    out["answer.containment"] = m.mean(float(r.correct) for r in ans)
    out["answer.containment_answered"] = m.mean(float(r.correct) for r in answered_ans)
    out["answer.exact_match"] = m.mean(r.exact_match for r in ans)
    out["answer.f1"] = m.mean(r.f1 for r in ans)
    out["citations.precision"] = _ratio(
        sum(r.citations_good for r in answered_ans), sum(len(r.citations) for r in answered_ans)
    )
    out["citations.recall"] = _ratio(
        sum(r.sentences_cited for r in answered_ans), sum(r.sentences for r in answered_ans)
    )
    out["faithfulness"] = (
        _ratio(sum(r.sentences_faithful for r in answered), sum(r.sentences for r in answered))
        if faithfulness
        else None
    )
    out["verifier.removed_sentences"] = sum(r.sentences_removed for r in results)
    out["citations.outside_collection"] = sum(r.citations_outside_collection for r in results)
    out["citations.outside_scope"] = sum(r.citations_outside_scope for r in results)
    out["abstention.rate_unanswerable"] = m.mean(float(r.abstained) for r in unans)
    out["abstention.false_rate_answerable"] = m.mean(float(r.abstained) for r in ans)
    out["errors"] = sum(r.error is not None for r in results)
    out["score"] = m.mean(float(r.score) for r in results)
    latencies = [r.latency_ms for r in results]
    out["latency.median_ms"] = m.percentile(latencies, 50)
    out["latency.p95_ms"] = m.percentile(latencies, 95)
    return out


def summarize(results: Sequence[ItemResult], *, faithfulness: bool = True) -> dict[str, Any]:
    """Overall and per-category metrics plus the per-item results."""
    categories: dict[str, list[ItemResult]] = {}
    for r in results:
        categories.setdefault(r.category, []).append(r)
    return {
        "overall": aggregate(results, faithfulness=faithfulness),
        "categories": {
            c: aggregate(rs, faithfulness=faithfulness) for c, rs in sorted(categories.items())
        },
        "items": [r.to_dict() for r in results],
    }


def failures(results: Iterable[ItemResult]) -> list[ItemResult]:
    """Items whose outcome is not the right one (abstentions on answerable items included)."""
    return [r for r in results if r.score < 1]


def git_commit(cwd: Path | None = None) -> str | None:
    """The checked-out commit (with ``+dirty`` when the tree has changes), if this is a git tree."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def meta(set_path: Path, items: int, settings: Any, mode: str) -> dict[str, Any]:
    return {
        "set": str(set_path),
        "set_sha256": hashlib.sha256(Path(set_path).read_bytes()).hexdigest(),
        "items": items,
        "mode": mode,
        "commit": git_commit(Path(__file__).resolve().parent),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "corpus_dir": str(settings.corpus_dir),
        "collection": settings.collection,
        "min_support": settings.min_support,
        "retrieve_k": settings.retrieve_k,
        "verify": settings.verify,
        "abstain": settings.abstain,
    }
