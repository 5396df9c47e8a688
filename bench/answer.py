"""Extractive answer latency on the default corpus, in process, after warm-up.

Run: ``.venv/bin/python -m bench.answer [--repeat N]``; writes ``bench/results/answer.json``.

Measured in the same run, on the same questions and the same loaded model:
(a) baseline: the bare ``Index.search(question, k=retrieve_k)`` (embedding + dense + BM25),
    the floor any answer built on retrieval pays;
(b) groundqa: ``QA.ask`` in extractive mode (condense, retrieve, evidence, read, answer,
    verify, abstain), with its per-stage split.

Goal: (b) median under 50 ms per question. Each question runs ``--repeat`` times per side,
interleaved, and the median over all runs counts (the machine is shared).
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
GOAL_MS = 50.0


def questions() -> list[str]:
    """The default eval set's questions when present, else a fixed handful."""
    path = ROOT / "evals" / "default.jsonl"
    if path.exists():
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                if not item.get("history"):
                    out.append(item["question"])
        if out:
            return out
    return [
        "When was the ceasefire announced?",
        "How many officers did Russia send?",
        "Who said that Iran had not invited the U.S.?",
        "What is the capital of France?",
    ]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    from service.qa import QA
    from service.settings import Settings

    with tempfile.TemporaryDirectory(prefix="groundqa-bench-") as tmp:
        settings = Settings(corpus_dir=ROOT / "corpus", data_dir=Path(tmp), mode="extractive")
        qa = QA(settings)
        qa.index.ingest()
        qa.warmup()
        qs = questions()
        for q in qs:  # warm-up: every passage split and embedded once, as in a running service
            qa.ask(q)
        search_ms: list[float] = []
        ask_ms: list[float] = []
        stages: dict[str, list[float]] = {}
        # Every timed call embeds and parses its question afresh: the question's memos are
        # emptied before each (corpus sentences stay cached, as in a running service).
        forget = getattr(qa.index.embedder, "clear", lambda: None)
        for _ in range(args.repeat):
            for q in qs:
                forget()
                t0 = time.perf_counter()
                qa.index.search(q, k=settings.retrieve_k)
                search_ms.append((time.perf_counter() - t0) * 1000)
                forget()
                qa.linguist.forget(q)
                t0 = time.perf_counter()
                answer = qa.ask(q)
                ask_ms.append((time.perf_counter() - t0) * 1000)
                for k, v in answer.timings.items():
                    stages.setdefault(k, []).append(v)

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "median_ms": round(statistics.median(values), 2),
            "p90_ms": round(pct(values, 0.9), 2),
            "mean_ms": round(statistics.fmean(values), 2),
        }

    result: dict[str, Any] = {
        "bench": "answer",
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "questions": len(qs),
        "runs_per_side": len(ask_ms),
        "baseline_index_search": summary(search_ms),
        "groundqa_extractive_ask": summary(ask_ms),
        "stages_median_ms": {k: round(statistics.median(v), 2) for k, v in stages.items()},
        "overhead_over_search_median_ms": round(
            statistics.median(ask_ms) - statistics.median(search_ms), 2
        ),
        "goal": {"median_ms_below": GOAL_MS, "met": statistics.median(ask_ms) < GOAL_MS},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
