"""Serving memory on a large index: oneDNN's kernel cache at its default capacity and bounded.

Run: ``.venv/bin/python -m bench.serve [--data build/scale/100000/data] [--load-seconds 60]``;
writes ``bench/results/serve.json``. The index is one ``bench.scale`` built (``--sizes
100000`` takes hours, so this reuses it rather than rebuilding).

Two ``groundqa serve`` processes run one after the other on the same index and the same
questions (SQuAD v1.1 training questions, all of whose articles the scale corpora hold):

- ``onednn_default``: ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` and ``LRU_CACHE_CAPACITY`` at
  oneDNN's and ideep's default of 1,024, as groundqa runs;
- ``bounded_256``: both at 256, the bound tried (it lowered a sequential process's memory but
  raised a loaded server's peak, so it is not set).

Each records its RSS when ready, answer p50/p95 over sequential questions, then 1, 8 and 32
closed-loop clients for ``--load-seconds`` each (throughput, p50/p95, errors, RSS after), its
peak RSS (VmHWM), and with ``--soak-minutes`` the RSS each minute at 32 clients.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import random
from pathlib import Path
from typing import Any

from bench.scale import ROOT, SQUAD_TRAIN, Server, ask_sequential, log, server_load

OUT = ROOT / "bench" / "results" / "serve.json"


def questions() -> list[str]:
    with gzip.open(SQUAD_TRAIN) as f:
        data = json.loads(f.read())["data"]
    qs = [q["question"] for a in data for p in a["paragraphs"] for q in p["qas"]]
    random.Random(0).shuffle(qs)
    return list(dict.fromkeys(qs))


def run(name: str, env: dict[str, str], qs: list[str], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"env": {k: v for k, v in env.items() if "CAPACITY" in k}}
    with Server(env, ROOT / "build" / f"bench-serve-{name}.log") as srv:
        out["rss_ready_mb"] = srv.rss_mb()
        seq, rest = qs[: args.questions], qs[args.questions :]
        ask_sequential(srv.url, seq[:5])  # first-use costs out of the way
        out["answer"] = ask_sequential(srv.url, seq)
        out["rss_after_sequential_mb"] = srv.rss_mb()
        log(f"{name}: answer {out['answer']}, rss {out['rss_after_sequential_mb']} MB")
        runs = []
        for clients in args.clients:
            r = server_load(srv, rest, clients, args.load_seconds)
            rest = rest[r["answered"] + r["errors"] :]
            r["rss_after_mb"] = srv.rss_mb()
            runs.append(r)
            log(f"{name}: {r}")
        out["load"] = runs
        if args.soak_minutes:
            samples = []
            for _ in range(args.soak_minutes):
                r = server_load(srv, rest, 32, 60)
                rest = rest[r["answered"] + r["errors"] :]
                samples.append({"rss_mb": srv.rss_mb(), "rps": r["throughput_rps"], **r})
                log(f"{name}: soak minute rss {samples[-1]['rss_mb']} MB")
            out["soak"] = {
                "rss_mb_each_minute": [s["rss_mb"] for s in samples],
                "errors": sum(s["errors"] for s in samples),
                "rss_growth_after_first_minute": round(
                    samples[-1]["rss_mb"] / samples[0]["rss_mb"] - 1, 3
                ),
            }
        out["peak_rss_mb"] = srv.rss_mb("VmHWM")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "build" / "scale" / "100000" / "data")
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--load-seconds", type=float, default=60)
    parser.add_argument("--soak-minutes", type=int, default=0)
    parser.add_argument("--baseline-last", action="store_true", help="run the bounded first")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    if not (args.data / "chroma").is_dir():
        raise SystemExit(f"no index in {args.data}: build it with python -m bench.scale")
    base = {"GROUNDQA_DATA_DIR": str(args.data), "GROUNDQA_CORPUS_DIR": str(args.data.parent)}
    qs = questions()
    results: dict[str, Any] = {}
    order = [("onednn_default", 1024), ("bounded_256", 256)]
    if args.baseline_last:  # the first server reads the index from disk: swap to check
        order.reverse()
    for name, cap in order:
        env = {
            **base,
            "ONEDNN_PRIMITIVE_CACHE_CAPACITY": str(cap),
            "LRU_CACHE_CAPACITY": str(cap),
        }
        results[name] = run(name, env, qs, args)
    ours, bounded = results["onednn_default"], results["bounded_256"]
    doc = {
        "bench": "serve",
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "data": str(args.data.relative_to(ROOT) if args.data.is_relative_to(ROOT) else args.data),
        "settings": {
            "clients": args.clients,
            "load_seconds": args.load_seconds,
            "order": [name for name, _ in order],
        },
        "results": results,
        "goals": {
            "serve_peak_rss_mb": ours["peak_rss_mb"],
            "serve_peak_rss_mb_bounded_256": bounded["peak_rss_mb"],
            "serve_peak_rss_at_most_1500_mb": ours["peak_rss_mb"] <= 1500,
            "answer_p50_ms": ours["answer"]["pipeline"].get("p50_ms"),
            "answer_p50_ms_bounded_256": bounded["answer"]["pipeline"].get("p50_ms"),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {args.out}: {doc['goals']}")


if __name__ == "__main__":
    main()
