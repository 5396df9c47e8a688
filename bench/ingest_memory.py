"""Where ingest's peak memory grows with the corpus: embedded Chroma against a Chroma server.

Run: ``.venv/bin/python -m bench.ingest_memory [--sizes 1000,10000] [--variants V,...]
[--out FILE]``; writes ``bench/results/ingest-memory.json``. Corpora as ``bench.scale`` builds
them (SQuAD v1.1 training articles). Each size is ingested once per variant, each time by a
fresh ``groundqa`` process: into embedded Chroma (``embedded``), the same with glibc's dynamic
mmap threshold (``embedded_dynamic_mmap``, the baseline for ``index.malloc``), and into a
``chroma run`` server (``server``, another process). The ingest process's peak RSS in each,
and the server's RSS after its ingest, show how much of the growth is Chroma's own index held
in the ingesting process, how much is groundqa's, and what the allocator setting changes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
from pathlib import Path
from typing import Any

from bench.scale import ROOT, WORK, _child, build_corpus, proc_rss_mb

OUT = ROOT / "bench" / "results" / "ingest-memory.json"


# Each variant: extra environment for the ingesting process, and whether it needs the server.
VARIANTS: dict[str, tuple[dict[str, str], bool]] = {
    "embedded": ({}, False),
    # The baseline for index.malloc.fix_mmap_threshold: glibc's dynamic mmap threshold.
    "embedded_dynamic_mmap": ({"GROUNDQA_INGEST_MMAP_THRESHOLD_KIB": "0"}, False),
    "server": ({}, True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"Comma-separated, of {list(VARIANTS)}."
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    variants = args.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        ap.error(f"unknown variants {sorted(unknown)}; known: {list(VARIANTS)}")

    import tests.conftest  # noqa: F401  (tests.procs needs it imported first)
    from tests.procs import ChromaServer

    work = WORK / "ingest-memory"
    shutil.rmtree(work, ignore_errors=True)
    (work / "server").mkdir(parents=True)
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        chroma = None
        if any(VARIANTS[v][1] for v in variants):
            chroma = stack.enter_context(ChromaServer(work / "server"))
        for size in (int(s) for s in args.sizes.split(",")):
            corpus = work / f"corpus-{size}"
            chunks, _, _ = build_corpus(size, corpus)
            row: dict[str, Any] = {"chunks": chunks}
            for variant in variants:
                extra, on_server = VARIANTS[variant]
                env = {
                    "GROUNDQA_CORPUS_DIR": str(corpus),
                    "GROUNDQA_DATA_DIR": str(work / f"{variant}-{size}"),
                    **extra,
                }
                if on_server:
                    assert chroma is not None
                    env |= {"GROUNDQA_CHROMA_URL": chroma.url, "GROUNDQA_COLLECTION": f"s{size}"}
                row[variant] = _child(["ingest", str(corpus)], env)
                if on_server:
                    assert chroma is not None
                    row["chroma_server_rss_mb_after"] = proc_rss_mb(chroma.proc.pid)
                print(size, variant, json.dumps(row[variant]), flush=True)
            results[str(size)] = row
    sizes = sorted(results, key=int)
    growth: dict[str, Any] = {}
    if len(sizes) >= 2:
        a, b = results[sizes[0]], results[sizes[-1]]
        growth = {
            f"{v}_ingest_peak_mb": round(b[v]["peak_rss_mb"] - a[v]["peak_rss_mb"], 1)
            for v in variants
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
