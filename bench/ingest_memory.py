"""Where ingest's peak memory grows with the corpus: embedded Chroma against a Chroma server.

Run: ``.venv/bin/python -m bench.ingest_memory [--sizes 1000,10000] [--out FILE]``; writes
``bench/results/ingest-memory.json``. Corpora as ``bench.scale`` builds them (SQuAD v1.1
training articles). Each size is ingested twice, each time by a fresh ``groundqa`` process:
into embedded Chroma, and into a ``chroma run`` server (another process). The ingest
process's peak RSS in both, and the server's RSS after each ingest, show how much of the
growth is Chroma's own index held in the ingesting process and how much is groundqa's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
from pathlib import Path
from typing import Any

from bench.scale import ROOT, WORK, _child, build_corpus, proc_rss_mb

OUT = ROOT / "bench" / "results" / "ingest-memory.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    import tests.conftest  # noqa: F401  (tests.procs needs it imported first)
    from tests.procs import ChromaServer

    work = WORK / "ingest-memory"
    shutil.rmtree(work, ignore_errors=True)
    (work / "server").mkdir(parents=True)
    results: dict[str, Any] = {}
    with ChromaServer(work / "server") as chroma:
        pid = chroma.proc.pid
        for size in (int(s) for s in args.sizes.split(",")):
            corpus = work / f"corpus-{size}"
            chunks, _, _ = build_corpus(size, corpus)
            embedded = _child(
                ["ingest", str(corpus)],
                {"GROUNDQA_CORPUS_DIR": str(corpus), "GROUNDQA_DATA_DIR": str(work / f"e{size}")},
            )
            server = _child(
                ["ingest", str(corpus)],
                {
                    "GROUNDQA_CORPUS_DIR": str(corpus),
                    "GROUNDQA_DATA_DIR": str(work / f"s{size}"),
                    "GROUNDQA_CHROMA_URL": chroma.url,
                    "GROUNDQA_COLLECTION": f"size{size}",
                },
            )
            results[str(size)] = {
                "chunks": chunks,
                "embedded": embedded,
                "server": server,
                "chroma_server_rss_mb_after": proc_rss_mb(pid),
            }
            print(size, json.dumps(results[str(size)]), flush=True)
    sizes = sorted(results, key=int)
    growth: dict[str, Any] = {}
    if len(sizes) >= 2:
        a, b = results[sizes[0]], results[sizes[-1]]
        growth = {
            "embedded_ingest_peak_mb": round(
                b["embedded"]["peak_rss_mb"] - a["embedded"]["peak_rss_mb"], 1
            ),
            "server_ingest_peak_mb": round(
                b["server"]["peak_rss_mb"] - a["server"]["peak_rss_mb"], 1
            ),
        }
    doc = {
        "bench": "ingest_memory",
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "precision": os.environ.get("GROUNDQA_MODEL_PRECISION", "auto"),
        "results": results,
        "growth_first_to_last": growth,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
