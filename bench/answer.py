"""Extractive answer latency on the default corpus, in process, after warm-up.

Run: ``.venv/bin/python -m bench.answer [--repeat N]``; writes ``bench/results/answer.json``.

Measured in the same run, on the same questions and the same loaded model:
(a) baseline: the bare ``Index.search(question, k=retrieve_k)`` (embedding + dense + BM25),
    the floor any answer built on retrieval pays;
(b) groundqa: ``QA.ask`` in extractive mode (condense, retrieve, evidence, read, answer,
    verify, abstain), with its per-stage split, its models in the configured precision (int8
    on a CPU by default, see ``index.precision``);
(b0) the same pipeline with every model in fp32 (``GROUNDQA_MODEL_PRECISION=fp32``), on the
    same index, interleaved with (b): what the precision saves.

Goal (the reader's issue): (b) median at most 100 ms and p95 at most 250 ms per question.
Each question runs ``--repeat`` times per side, interleaved, and all runs count (the machine is
shared).

``--scoped`` adds (c): the same ``QA.ask`` limited to one document (the question's gold source,
else the first document), scope resolution included, interleaved with (b); goal: (c)'s median
within 10% of (b)'s. Written to ``bench/results/answer-scoped.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "answer.json"
GOAL_MEDIAN_MS = 100.0
GOAL_P95_MS = 250.0


def questions() -> list[str]:
    """The default eval set's questions when present, else a fixed handful."""
    path = ROOT / "evals" / "default.jsonl"
    if path.exists():
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                if not item.get("history") and not item.get("scope"):
                    out.append(item["question"])
        if out:
            return out
    return [
        "When was the ceasefire announced?",
        "How many officers did Russia send?",
        "Who said that Iran had not invited the U.S.?",
        "What is the capital of France?",
    ]


def _scopes(qs: list[str], sources: list[str]) -> dict[str, str]:
    """Per question, the document a scoped run limits it to: its gold source, else the first."""
    gold: dict[str, str] = {}
    path = ROOT / "evals" / "default.jsonl"
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                if item.get("sources"):
                    gold.setdefault(item["question"], item["sources"][0])
    return {q: gold.get(q, sources[0]) for q in qs}


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--scoped", action="store_true", help="also time scoped questions")
    args = parser.parse_args()
    args.out = args.out or (OUT.with_name("answer-scoped.json") if args.scoped else OUT)

    from service.qa import QA
    from service.settings import Settings

    with tempfile.TemporaryDirectory(prefix="groundqa-bench-") as tmp:
        settings = Settings(corpus_dir=ROOT / "corpus", data_dir=Path(tmp), mode="extractive")
        qa = QA(settings)
        qa.index.ingest()
        qa.warmup()
        fp32 = QA(settings.model_copy(update={"model_precision": "fp32"}))
        fp32.warmup()
        qs = questions()
        scopes = _scopes(qs, [s.source for s in qa.index.sources()])
        for q in qs:  # warm-up: every passage split and embedded once, as in a running service
            qa.ask(q)
            fp32.ask(q)
        search_ms: list[float] = []
        ask_ms: list[float] = []
        fp32_ms: list[float] = []
        fp32_stages: dict[str, list[float]] = {}
        scoped_ms: list[float] = []
        stages: dict[str, list[float]] = {}
        # Every timed call embeds its question afresh: the question's memos are
        # emptied before each (corpus sentences stay cached, as in a running service).
        forget = getattr(qa.index.embedder, "clear", lambda: None)

        def timed_ask(pipeline: QA, q: str, ms: list[float], split: dict[str, list[float]]) -> None:
            getattr(pipeline.index.embedder, "clear", lambda: None)()
            t0 = time.perf_counter()
            answer = pipeline.ask(q)
            ms.append((time.perf_counter() - t0) * 1000)
            for k, v in answer.timings.items():
                split.setdefault(k, []).append(v)

        for _ in range(args.repeat):
            for q in qs:
                forget()
                t0 = time.perf_counter()
                qa.index.search(q, k=settings.retrieve_k)
                search_ms.append((time.perf_counter() - t0) * 1000)
                timed_ask(qa, q, ask_ms, stages)
                timed_ask(fp32, q, fp32_ms, fp32_stages)
                if args.scoped:
                    from index.collections import Scope

                    forget()
                    t0 = time.perf_counter()
                    sources = Scope(documents=(scopes[q],)).resolve(qa.index.sources())
                    qa.ask(q, sources=sources)
                    scoped_ms.append((time.perf_counter() - t0) * 1000)

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "median_ms": round(statistics.median(values), 2),
            "p90_ms": round(pct(values, 0.9), 2),
            "p95_ms": round(pct(values, 0.95), 2),
            "mean_ms": round(statistics.fmean(values), 2),
        }

    result: dict[str, Any] = {
        "bench": "answer",
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "questions": len(qs),
        "runs_per_side": len(ask_ms),
        "baseline_index_search": summary(search_ms),
        "precision": settings.precision,
        "groundqa_extractive_ask": summary(ask_ms),
        "stages_median_ms": {k: round(statistics.median(v), 2) for k, v in stages.items()},
        "baseline_fp32_ask": summary(fp32_ms),
        "baseline_fp32_stages_median_ms": {
            k: round(statistics.median(v), 2) for k, v in fp32_stages.items()
        },
        "speedup_median_over_fp32": round(
            statistics.median(fp32_ms) / statistics.median(ask_ms), 2
        ),
        "overhead_over_search_median_ms": round(
            statistics.median(ask_ms) - statistics.median(search_ms), 2
        ),
        "goal": {
            "median_ms_at_most": GOAL_MEDIAN_MS,
            "p95_ms_at_most": GOAL_P95_MS,
            "met": statistics.median(ask_ms) <= GOAL_MEDIAN_MS and pct(ask_ms, 0.95) <= GOAL_P95_MS,
        },
    }
    if scoped_ms:
        ratio = statistics.median(scoped_ms) / statistics.median(ask_ms)
        result["groundqa_scoped_ask"] = summary(scoped_ms)
        result["scoped_goal"] = {
            "median_within_pct_of_unscoped": 10,
            "ratio": round(ratio, 3),
            "met": ratio <= 1.10,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
