"""SQuAD v2.0 as an open-domain benchmark: every question against every paragraph of the file."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evals import metrics as m
from evals.runner import Asker, git_commit
from evals.squad import SquadQuestion, load, materialize
from index.errors import GroundQAError
from service.result import Mode
from service.settings import Settings

RECALL_KS = (1, 5, 10)


def squad_settings(settings: Settings, path: Path) -> Settings:
    """Settings for a SQuAD file: its own collection and data area, never the configured ones."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    area = settings.data_dir / "squad" / digest
    return settings.model_copy(
        update={
            "collection": f"squad-{digest}",
            "corpus_dir": area / "corpus",
            "data_dir": area / "index",
        }
    )


def sample(questions: Sequence[SquadQuestion], limit: int | None, seed: int) -> list[SquadQuestion]:
    """All questions, or a seeded sample of ``limit`` kept in file order."""
    if limit is None or limit >= len(questions):
        return list(questions)
    picked = set(random.Random(seed).sample(range(len(questions)), limit))
    return [q for i, q in enumerate(questions) if i in picked]


@dataclass(slots=True)
class SquadResult:
    id: str
    question: str
    is_impossible: bool
    answers: tuple[str, ...]
    source: str
    prediction: str  # "" for an abstention, as the official script expects
    abstained: bool
    exact_match: float
    f1: float
    contained: bool
    gold_rank: int | None
    latency_ms: float
    error: str | None = None


def ask_one(qa: Asker, q: SquadQuestion, mode: Mode | None) -> SquadResult:
    t0 = time.perf_counter()
    error = None
    try:
        answer = qa.ask(q.question, (), mode=mode)
        abstained = answer.abstained
        shown = m.strip_markers(answer.answer)
        # The extractive answer to a SQuAD question is the shortest span that answers it.
        prediction = "" if abstained else (answer.short_answer or shown)
    except GroundQAError as exc:
        abstained, shown, prediction, error = False, "", "", f"{type(exc).__name__}: {exc}"
    latency = (time.perf_counter() - t0) * 1000
    ranked = [h.chunk.source for h in qa.index.search(q.question, max(RECALL_KS))]
    contained = (
        not abstained and error is None and m.contains_any(f"{prediction} {shown}", q.answers)
    )
    return SquadResult(
        id=q.id,
        question=q.question,
        is_impossible=q.is_impossible,
        answers=q.answers,
        source=q.source,
        prediction=prediction,
        abstained=abstained,
        exact_match=float(m.max_exact(q.answers, prediction)),
        f1=m.max_f1(q.answers, prediction),
        contained=contained,
        gold_rank=m.first_gold_rank(ranked, [q.source]),
        latency_ms=latency,
        error=error,
    )


def summarize(results: Sequence[SquadResult]) -> dict[str, Any]:
    has = [r for r in results if not r.is_impossible]
    no = [r for r in results if r.is_impossible]

    def pct(vals: Any) -> float | None:
        v = m.mean(vals)
        return None if v is None else 100.0 * v

    out: dict[str, Any] = {
        "total": len(results),
        "HasAns_total": len(has),
        "NoAns_total": len(no),
        "exact": pct(r.exact_match for r in results),
        "f1": pct(r.f1 for r in results),
        "HasAns_exact": pct(r.exact_match for r in has),
        "HasAns_f1": pct(r.f1 for r in has),
        "NoAns_exact": pct(r.exact_match for r in no),
        "NoAns_f1": pct(r.f1 for r in no),
        "HasAns_containment": pct(float(r.contained) for r in has),
        "HasAns_false_abstention": pct(float(r.abstained) for r in has),
        "NoAns_abstention": pct(float(r.abstained) for r in no),
        "score": m.mean(
            float(m.score(not r.is_impossible, r.abstained, r.contained)) for r in results
        ),
        "errors": sum(r.error is not None for r in results),
    }
    for k in RECALL_KS:
        out[f"recall@{k}"] = pct(m.hit_at_k(r.gold_rank, k) for r in results)
        out[f"HasAns_recall@{k}"] = pct(m.hit_at_k(r.gold_rank, k) for r in has)
    out["mrr"] = m.mean(m.reciprocal_rank(r.gold_rank) for r in results)
    latencies = [r.latency_ms for r in results]
    out["latency.median_ms"] = m.percentile(latencies, 50)
    out["latency.p95_ms"] = m.percentile(latencies, 95)
    return out


def run(
    qa_factory: Callable[[Settings], Asker],
    settings: Settings,
    path: Path,
    *,
    limit: int | None = None,
    seed: int = 0,
    mode: Mode | None = None,
    on_ingest: Callable[[int, int], None] | None = None,
    on_item: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Ingest every paragraph of ``path`` into a separate collection, ask, and score."""
    # Taken before the run: the code that answers is the code checked out now.
    commit, started = git_commit(Path(__file__).resolve().parent), time.gmtime()
    paragraphs, questions = load(path)
    bench = squad_settings(settings, path)
    materialize(paragraphs, bench.corpus_dir)
    qa = qa_factory(bench)
    report = qa.index.ingest(bench.corpus_dir, progress=on_ingest)
    chosen = sample(questions, limit, seed)
    results: list[SquadResult] = []
    for q in chosen:
        results.append(ask_one(qa, q, mode))
        if on_item is not None:
            on_item(len(results), len(chosen))
    return {
        "meta": {
            "file": str(path),
            "file_sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
            "paragraphs": len(paragraphs),
            "questions": len(questions),
            "asked": len(chosen),
            "limit": limit,
            "seed": seed,
            "mode": mode or settings.mode,
            "collection": bench.collection,
            "chunks": report.chunks_total,
            "commit": commit,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", started),
        },
        "metrics": summarize(results),
        "items": [asdict(r) for r in results],
    }


def predictions(results: dict[str, Any]) -> dict[str, str]:
    """The official SQuAD prediction file: ``{qid: answer text}``, ``""`` for an abstention."""
    return {i["id"]: i["prediction"] for i in results["items"]}


ROWS: tuple[tuple[str, str, str], ...] = (
    ("overall", "exact", "f1"),
    ("HasAns", "HasAns_exact", "HasAns_f1"),
    ("NoAns", "NoAns_exact", "NoAns_f1"),
)


def markdown(results: dict[str, Any]) -> str:
    meta, mt = results["meta"], results["metrics"]

    def f(v: Any, digits: int = 1) -> str:
        return "–" if v is None else f"{v:.{digits}f}"

    sample_note = (
        f"a seeded sample of {meta['asked']} (seed {meta['seed']})"
        if meta["limit"] is not None and meta["asked"] < meta["questions"]
        else f"all {meta['asked']}"
    )
    lines = [
        f"SQuAD v2.0 `{Path(meta['file']).name}`: {meta['paragraphs']} paragraphs ingested "
        f"({meta['chunks']} chunks), {sample_note} of {meta['questions']} questions asked "
        f"open-domain; mode {meta['mode']}; commit `{meta['commit']}`; {meta['date']}.",
        "",
        "| subset | n | EM | F1 |",
        "|---|---:|---:|---:|",
    ]
    counts = {"overall": mt["total"], "HasAns": mt["HasAns_total"], "NoAns": mt["NoAns_total"]}
    for name, em, f1 in ROWS:
        lines.append(f"| {name} | {counts[name]} | {f(mt[em])} | {f(mt[f1])} |")
    lines += [
        "",
        "| metric | value |",
        "|---|---:|",
        f"| HasAns accepted-answer containment (%) | {f(mt['HasAns_containment'])} |",
        f"| HasAns false abstention (%) | {f(mt['HasAns_false_abstention'])} |",
        f"| NoAns abstention (%) | {f(mt['NoAns_abstention'])} |",
        f"| retrieval recall@1 / @5 / @10 of the gold paragraph (%) | "
        f"{f(mt['recall@1'])} / {f(mt['recall@5'])} / {f(mt['recall@10'])} |",
        f"| retrieval MRR | {f(mt['mrr'], 3)} |",
        f"| score (+1 right, 0 abstain on answerable, -1 wrong), mean | {f(mt['score'], 3)} |",
        f"| latency median / p95 (ms) | {f(mt['latency.median_ms'], 0)} / "
        f"{f(mt['latency.p95_ms'], 0)} |",
    ]
    return "\n".join(lines) + "\n"
