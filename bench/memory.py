"""Where serving memory goes, stage by stage, on an index ``bench.scale`` built.

Run: ``.venv/bin/python -m bench.memory build/scale/1000/data build/scale/10000/data``; writes
``bench/results/memory.json``. Each data dir is measured in a fresh process: RSS after
importing, after opening the index and its first search (Chroma's vector index and the BM25
index load), after loading the models and answering, and the keyword index's own arrays.
The difference between two sizes, divided by the difference in chunks, is the cost per chunk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "memory.json"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def measure(data_dir: Path) -> dict[str, Any]:
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
    docs = getattr(keyword, "_docs", {})
    out["keyword_token_arrays_mb"] = round(sum(a.nbytes for a in docs.values()) / 2**20, 1)
    _, retriever = getattr(keyword, "_state", ([], None))
    if retriever is not None:
        scores = retriever.scores
        out["keyword_matrix_mb"] = round(
            sum(scores[k].nbytes for k in ("data", "indices", "indptr")) / 2**20, 1
        )
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
    results = {}
    for d in sys.argv[1:]:
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
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
