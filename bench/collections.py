"""Collections and scoped questions, measured (issue 11's goals).

Run: ``.venv/bin/python -m bench.collections [--parts isolation,scoped,latency,delete]``;
writes ``bench/results/collections.json`` (each part under its name, merged into what is there).

One data dir holds two collections: the default corpus (``groundqa``) and the SQuAD 2.0 dev-split
paragraphs (``squad``, one document per paragraph, ``AAA_PPP.txt`` as ``evals.squad`` lays them
out, so article ``AAA`` is the glob ``AAA_*``).

- isolation: the default eval set and a seeded SQuAD sample, each run against both collections;
  counts citations whose source is not a document of the collection asked.
- scoped: the SQuAD sample on ``squad`` unscoped, scoped to its own article, and scoped to
  another article (which is silent on it, so the right outcome is to abstain).
- latency: per question, interleaved, ``QA.ask`` unscoped and scoped to its own article (scope
  resolution from the manifest included) on ``squad``, and the same on the default collection
  (scope: the question's gold document); medians compared.
- delete: a third collection of >= 10,000 chunks (SQuAD *training* paragraphs) is ingested and
  deleted; the default eval set is asked against ``groundqa`` before it exists, while it exists and
  after its deletion, and the answers (text, short answer, abstention, reason, confidence,
  citations) and the ``groundqa`` Chroma records are compared byte for byte.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "collections.json"
SQUAD_DEV = ROOT.parent / "shared" / "benchmarks" / "squad2" / "dev-split.json"
SQUAD_TRAIN = ROOT.parent / "shared" / "training" / "squad-train.json.gz"
BIG_CHUNKS = 10_000


def log(msg: str) -> None:
    print(f"{dt.datetime.now(dt.UTC):%H:%M:%S} {msg}", file=sys.stderr, flush=True)


class Bound:
    """``QA`` bound to one collection: what ``evals.runner.run_items`` asks through."""

    def __init__(self, qa: Any, index: Any) -> None:
        self.qa = qa
        self.index = index

    def ask(self, question: str, history: Any = (), **kw: Any) -> Any:
        return self.qa.ask(question, history, index=self.index, **kw)


def squad_items(limit: int, seed: int, scope: str | None = None) -> list[Any]:
    """A seeded SQuAD dev sample as eval items; ``scope``: None, "own" or "other" article."""
    from evals.benchmark import sample
    from evals.dataset import EvalItem, EvalScope
    from evals.squad import load

    _, questions = load(SQUAD_DEV)
    articles = sorted({q.source[:3] for q in questions})
    items = []
    for q in sample(questions, limit, seed):
        article = q.source[:3]
        if scope == "other":
            article = articles[(articles.index(article) + 1) % len(articles)]
        answerable = not q.is_impossible and scope != "other"
        items.append(
            EvalItem(
                id=q.id,
                category="squad-" + ("unanswerable" if q.is_impossible else "answerable"),
                question=q.question,
                answerable=answerable,
                answers=list(q.answers) if answerable else [],
                sources=[q.source] if answerable else [],
                scope=EvalScope(glob=f"{article}_*") if scope else None,
            )
        )
    return items


def run(asker: Any, items: Sequence[Any]) -> tuple[dict[str, Any], list[Any]]:
    from evals.runner import aggregate, run_items

    results = run_items(asker, items, min_support=0.5, judge=None)
    return aggregate(results, faithfulness=False), results


def _keep(summary: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "items",
        "answerable",
        "unanswerable",
        "answer.containment",
        "answer.exact_match",
        "answer.f1",
        "abstention.rate_unanswerable",
        "abstention.false_rate_answerable",
        "citations.outside_collection",
        "citations.outside_scope",
        "retrieval.hit@5",
        "errors",
        "score",
        "latency.median_ms",
    )
    return {k: summary.get(k) for k in keys}


def part_isolation(qa: Any, cols: Any, limit: int, seed: int) -> dict[str, Any]:
    from evals.dataset import DEFAULT_SET, load_set

    sets = {"default": load_set(DEFAULT_SET), "squad": squad_items(limit, seed)}
    out: dict[str, Any] = {}
    for set_name, items in sets.items():
        for col in ("groundqa", "squad"):
            asked = items
            if set_name == "default" and col != "groundqa":
                # The default set's scopes name the default corpus's documents: unscoped here.
                asked = [i.model_copy(update={"scope": None}) for i in items]
            log(f"isolation: {set_name} set ({len(asked)}) on {col}")
            summary, results = run(Bound(qa, cols.index(col)), asked)
            cited = sum(len(r.citations) for r in results)
            out[f"{set_name}_set_on_{col}"] = {
                **_keep(summary),
                "answered": sum(not r.abstained and r.error is None for r in results),
                "citations": cited,
            }
    out["citations_outside_collection_total"] = sum(
        v["citations.outside_collection"] for v in out.values() if isinstance(v, dict)
    )
    return out


def part_scoped(qa: Any, cols: Any, limit: int, seed: int) -> dict[str, Any]:
    asker = Bound(qa, cols.index("squad"))
    out: dict[str, Any] = {}
    for scope in (None, "own", "other"):
        name = {None: "unscoped", "own": "scoped_own_article", "other": "scoped_other_article"}
        log(f"scoped: {name[scope]}")
        summary, results = run(asker, squad_items(limit, seed, scope))
        out[name[scope]] = {
            **_keep(summary),
            "abstained": sum(r.abstained for r in results),
            "answerable_abstained": sum(r.abstained for r in results if r.answerable),
        }
    return out


def part_latency(qa: Any, cols: Any, limit: int, seed: int, repeat: int) -> dict[str, Any]:
    from evals.dataset import DEFAULT_SET, load_set
    from index.collections import Scope

    own = squad_items(limit, seed, "own")
    cases: dict[str, list[tuple[str, Scope]]] = {
        "squad": [(i.question, Scope(glob=i.scope.glob if i.scope else None)) for i in own],
        "groundqa": [
            (i.question, Scope(documents=tuple(i.sources[:1] or ["000_e8b04126fa046505.txt"])))
            for i in load_set(DEFAULT_SET)
            if not i.history and i.scope is None
        ][:limit],
    }
    out: dict[str, Any] = {}
    for col, qs in cases.items():
        index = cols.index(col)
        forget = getattr(index.embedder, "clear", lambda: None)
        for q, scope in qs:
            # Warm-up of both sides: every passage either may retrieve is split and embedded
            # once, as in a running service; otherwise the scoped side pays for cold passages.
            qa.ask(q, index=index)
            qa.ask(q, index=index, sources=scope.resolve(cols.sources(col)))
        plain: list[float] = []
        scoped: list[float] = []
        log(f"latency: {col}, {len(qs)} questions x {repeat}")
        for _ in range(repeat):
            for q, scope in qs:
                forget()
                t0 = time.perf_counter()
                qa.ask(q, index=index)
                plain.append((time.perf_counter() - t0) * 1000)
                forget()
                t0 = time.perf_counter()
                sources = scope.resolve(cols.sources(col))
                qa.ask(q, index=index, sources=sources)
                scoped.append((time.perf_counter() - t0) * 1000)
        p50, s50 = statistics.median(plain), statistics.median(scoped)
        out[col] = {
            "questions": len(qs),
            "runs_per_side": len(plain),
            "unscoped_median_ms": round(p50, 1),
            "scoped_median_ms": round(s50, 1),
            "scoped_over_unscoped": round(s50 / p50, 3),
            "goal_within_10pct": s50 <= 1.10 * p50,
        }
    return out


def _answers(qa: Any, index: Any) -> list[dict[str, Any]]:
    from evals.dataset import DEFAULT_SET, load_set

    out = []
    for item in load_set(DEFAULT_SET):
        a = qa.ask(item.question, item.history, index=index)
        out.append(
            {
                "id": item.id,
                **a.model_dump(
                    mode="json",
                    include={"answer", "short_answer", "abstained", "reason", "confidence"},
                ),
                "citations": [c.model_dump(mode="json") for c in a.citations],
            }
        )
    return out


def _chroma_digest(settings: Any, name: str) -> str:
    """A digest of every record of collection ``name``'s Chroma collections."""
    from index.store import make_client

    client = make_client(settings)
    h = hashlib.sha256()
    names = sorted(c.name for c in client.list_collections() if c.name.startswith(f"{name}-"))
    for n in names:
        col = client.get_collection(n, embedding_function=None)
        got = col.get(include=["documents", "metadatas", "embeddings"])
        rows = sorted(
            zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True),
            key=lambda r: r[0],
        )
        h.update(n.encode())
        for cid, doc, meta, emb in rows:
            h.update(cid.encode())
            h.update(str(doc).encode())
            h.update(json.dumps(meta, sort_keys=True).encode())
            h.update(bytes(memoryview(emb.astype("float32")) if hasattr(emb, "astype") else b""))
    return h.hexdigest()


def part_delete(qa: Any, cols: Any, work: Path) -> dict[str, Any]:
    from index.chunking import Chunker
    from index.loaders import file_hash, parse

    settings = cols.settings
    index = cols.index("groundqa")
    log("delete: answers before the big collection exists")
    before = _answers(qa, index)
    digest_before = _chroma_digest(settings, "groundqa")

    folder = work / "big-corpus"
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(SQUAD_TRAIN) as f:
        data = json.loads(f.read())
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    chunks = paragraphs = 0
    for a, article in enumerate(data["data"]):
        for p, para in enumerate(article["paragraphs"]):
            text = f"{article['title'].replace('_', ' ')}\n\n{para['context']}\n"
            source = f"t{a:03d}_{p:03d}.txt"
            (folder / source).write_text(text, encoding="utf-8")
            raw = text.encode()
            chunks += len(chunker.split(parse(raw, source, file_hash(raw))))
            paragraphs += 1
            if chunks >= BIG_CHUNKS:
                break
        if chunks >= BIG_CHUNKS:
            break
    cols.create("big")
    log(f"delete: ingesting {paragraphs} paragraphs ({chunks} chunks) into 'big'")
    t0 = time.perf_counter()
    report = cols.index("big").ingest(folder)
    ingest_s = time.perf_counter() - t0
    log(f"delete: {report.chunks_total} chunks in {ingest_s:.0f} s; answers while it exists")
    during = _answers(qa, index)
    t0 = time.perf_counter()
    gone = cols.delete("big")
    delete_s = time.perf_counter() - t0
    log("delete: answers after the delete")
    after = _answers(qa, index)
    # A fresh process's view: a new QA and Collections over the same data dir.
    from index.collections import Collections
    from service.qa import QA

    fresh_qa = QA(qa.settings)
    fresh = _answers(fresh_qa, Collections(qa.settings, default=fresh_qa.index).index("groundqa"))
    digest_after = _chroma_digest(settings, "groundqa")
    same = before == during == after == fresh
    differing = [b["id"] for b, x in zip(before, after, strict=True) if b != x]
    return {
        "big_collection": {
            "paragraphs": paragraphs,
            "chunks": report.chunks_total,
            "ingest_s": round(ingest_s, 1),
            "delete_s": round(delete_s, 2),
            "chunks_removed": gone.chunks,
            "chroma_collections_dropped": gone.chroma_collections,
            "left_after_delete": [n for n in cols.names() if n == "big"],
        },
        "default_set_items": len(before),
        "answers_identical_before_during_after_and_fresh_process": same,
        "items_differing_before_after": differing,
        "groundqa_chroma_records_identical": digest_before == digest_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", default="delete,isolation,scoped,latency")
    parser.add_argument("--limit", type=int, default=150, help="SQuAD questions sampled")
    parser.add_argument("--latency-limit", type=int, default=40, help="questions per collection")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/groundqa-bench-collections"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    from evals.squad import load, materialize
    from index.collections import Collections
    from service.qa import QA
    from service.settings import Settings

    args.work.mkdir(parents=True, exist_ok=True)
    settings = Settings(corpus_dir=ROOT / "corpus", data_dir=args.work / "data", mode="extractive")
    qa = QA(settings)
    log("ingesting the default corpus and the SQuAD dev paragraphs")
    qa.index.ingest()
    cols = Collections(settings, default=qa.index)
    paragraphs, _ = load(SQUAD_DEV)
    cols.create("squad")
    cols.index("squad").ingest(materialize(paragraphs, args.work / "squad-corpus"))
    qa.warmup()

    result: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    result["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    result["collections"] = {n: cols.info(n).chunks for n in cols.names()}
    for part in args.parts.split(","):
        t0 = time.perf_counter()
        match part:
            case "isolation":
                got = part_isolation(qa, cols, args.limit, args.seed)
            case "scoped":
                got = part_scoped(qa, cols, args.limit, args.seed)
            case "latency":
                got = part_latency(qa, cols, args.latency_limit, args.seed, args.repeat)
            case "delete":
                got = part_delete(qa, cols, args.work)
            case _:
                raise SystemExit(f"unknown part {part!r}")
        got["when"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        got["seconds"] = round(time.perf_counter() - t0, 1)
        result[part] = got
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        log(f"{part}: done in {got['seconds']} s")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
