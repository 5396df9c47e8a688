"""Where serving memory goes, stage by stage, on an index ``bench.scale`` built.

Run: ``.venv/bin/python -m bench.memory build/scale/1000/data build/scale/10000/data [--out
FILE]``; writes ``bench/results/memory.json`` by default. Each data dir is measured in a fresh
process: RSS after importing, after opening the index and its first search (Chroma's vector
index and the BM25 index load), after loading each model and answering, and the keyword
index's own arrays. The difference between two sizes, divided by the difference in chunks, is
the cost per chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.scale import proc_rss_mb

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "memory.json"


def rss_mb() -> float:
    return proc_rss_mb()


def measure(data_dir: Path) -> dict[str, Any]:
    from service import abstain
    from service.qa import QA
    from service.settings import Settings

    out: dict[str, Any] = {"imported": rss_mb()}
    settings = Settings(data_dir=data_dir, corpus_dir=data_dir.parent / "corpus")
    qa = QA(settings)
    chunks = qa.index.count()
    out["chunks"] = chunks
    out["index_opened"] = rss_mb()
    qa.index.search("the history of the city", 20)
    out["first_search"] = rss_mb()
    keyword = next(iter(qa.index._keywords.values()))
    docs = getattr(keyword, "_docs", None) or {}
    out["keyword_token_arrays_mb"] = round(sum(a.nbytes for a in docs.values()) / 2**20, 1)
    _, retriever = getattr(keyword, "_state", ([], None))
    if retriever is not None:
        scores = retriever.scores
        out["keyword_matrix_mb"] = round(
            sum(scores[k].nbytes for k in ("data", "indices", "indptr")) / 2**20, 1
        )
    # each model on its own, then whatever warmup loads besides them
    qa.reader.warmup()
    out["reader_loaded"] = rss_mb()
    qa.support.warmup()
    out["support_loaded"] = rss_mb()
    abstain.warmup()
    out["wordnet_loaded"] = rss_mb()
    qa.warmup()
    out["models_warm"] = rss_mb()
    for q in ("Who founded the university?", "When was the treaty signed?", "What is a gene?"):
        qa.ask(q)
    out["after_answers"] = rss_mb()
    return out


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(measure(Path(sys.argv[2]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dirs", nargs="+")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    results = {}
    for d in args.data_dirs:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.memory", "--child", d],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        results[d] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(d, results[d], flush=True)
    sizes = sorted(results.values(), key=lambda r: r["chunks"])
    per_chunk = {}
    if len(sizes) >= 2:
        a, b = sizes[0], sizes[-1]
        n = b["chunks"] - a["chunks"]
        for k in ("first_search", "models_warm", "after_answers"):
            per_chunk[k] = round((b[k] - a[k]) * 1024 / n, 2) if n else None
    doc = {"bench": "memory", "results": results, "kb_per_chunk": per_chunk}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
