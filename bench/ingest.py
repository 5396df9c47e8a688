"""Ingest throughput on the SQuAD dev paragraphs: groundqa vs the raw model vs plain LangChain.

Run: ``.venv/bin/python -m bench.ingest [--squad PATH] [--repeat N]``; writes
``bench/results/ingest.json``. All three pipelines use the same model, loaded before timing.

(a) raw: ``SentenceTransformer.encode`` in fp32 over groundqa's chunk texts (embedding only;
    groundqa's own embedder runs int8 on a CPU, see ``index.precision``)
(b) groundqa: ``Index.ingest`` into a fresh data dir (read, chunk, embed, Chroma, BM25)
(c) LangChain: TextLoader + RecursiveCharacterTextSplitter + HuggingFaceEmbeddings +
    ``Chroma.from_documents`` into a temp dir
(d) re-ingest of the unchanged corpus by a fresh ``Index`` (seconds)

Goals: (b) within 15% of (a) in tokens/s, (b) no slower than (c) in tokens/s, (d) under 2 s.
Each timed step runs ``--repeat`` times and the best run counts (the machine is shared).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SQUAD = ROOT.parent / "shared" / "benchmarks" / "squad2" / "dev-split.json"
OUT = ROOT / "bench" / "results" / "ingest.json"


def token_count(embedder: Any, texts: list[str]) -> int:
    """Tokens the model actually reads (its tokenizer, truncated at its window)."""
    enc = embedder.tokenizer(texts, truncation=True, max_length=embedder.max_tokens)
    return sum(len(ids) for ids in enc["input_ids"])


def best(runs: list[float]) -> float:
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--squad", type=Path, default=SQUAD)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import numpy as np
    import torch

    from evals.squad import load, materialize
    from index import Index
    from index.chunking import Chunker
    from index.embedding import get_embedder
    from index.loaders import load as load_document
    from index.loaders import walk
    from index.settings import IndexSettings

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        paragraphs, _ = load(args.squad)
        corpus = materialize(paragraphs, work / "corpus")
        base = IndexSettings(corpus_dir=corpus, data_dir=work / "unused")
        embedder = get_embedder(base)
        embedder.encode(["warm up the model"])
        from sentence_transformers import SentenceTransformer

        raw_model = SentenceTransformer(str(embedder.path), device=base.embedding_device)
        raw_model.encode(["warm up the model"])

        chunker = Chunker(base.chunk_size, base.chunk_overlap)
        texts = [
            c.text
            for source, path in walk(corpus)
            for c in chunker.split(load_document(path, source, base.max_file_bytes))
        ]
        tokens = token_count(embedder, texts)

        import chromadb
        from langchain_chroma import Chroma
        from langchain_community.document_loaders import TextLoader
        from langchain_huggingface import HuggingFaceEmbeddings
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        lc_embeddings = HuggingFaceEmbeddings(
            model_name=str(embedder.path),
            model_kwargs={"device": base.embedding_device},
            encode_kwargs={"normalize_embeddings": True, "batch_size": base.embedding_batch_size},
        )
        lc_embeddings.embed_documents(["warm up the model"])
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=base.chunk_size, chunk_overlap=base.chunk_overlap
        )

        raw_runs: list[float] = []
        ours_runs: list[float] = []
        lc_runs: list[float] = []
        reingest_runs: list[float] = []
        chunks_total = lc_chunks = lc_tokens = 0
        # Rounds interleave the pipelines so load from other processes hits them alike.
        for i in range(args.repeat):
            # (a) raw model
            t = time.perf_counter()
            raw_vectors = raw_model.encode(
                texts,
                batch_size=base.embedding_batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            raw_runs.append(time.perf_counter() - t)

            # (b) groundqa full ingest into a fresh data dir
            settings = base.model_copy(update={"data_dir": work / f"data-{i}"})
            t = time.perf_counter()
            report = Index(settings, embedder=embedder).ingest()
            ours_runs.append(time.perf_counter() - t)
            chunks_total = report.chunks_total
            assert report.chunks_embedded == len(texts), "bench corpus chunked differently"

            # (d) unchanged re-ingest by a fresh Index (a new process would do the same work)
            t = time.perf_counter()
            report = Index(settings, embedder=embedder).ingest()
            reingest_runs.append(time.perf_counter() - t)
            assert report.chunks_embedded == 0

            # (c) plain LangChain
            t = time.perf_counter()
            docs = [d for p in sorted(corpus.glob("*.txt")) for d in TextLoader(str(p)).load()]
            splits = splitter.split_documents(docs)
            Chroma.from_documents(
                splits,
                lc_embeddings,
                collection_name="bench",
                persist_directory=str(work / f"lc-{i}"),
                client_settings=chromadb.config.Settings(anonymized_telemetry=False),
            )
            lc_runs.append(time.perf_counter() - t)
            lc_chunks = len(splits)
            lc_tokens = token_count(embedder, [d.page_content for d in splits])

        # (b - a) measured directly: groundqa's ingest with the model's output replayed from a
        # cache, i.e. everything except encoding. Unlike b/a, load elsewhere barely moves it.
        vectors = dict(zip(texts, raw_vectors, strict=True))
        real_encode = embedder.encode
        embedder.encode = lambda batch: np.stack([vectors[x] for x in batch])  # type: ignore[method-assign,assignment]
        overhead_runs = []
        try:
            for i in range(args.repeat):
                settings = base.model_copy(update={"data_dir": work / f"overhead-{i}"})
                t = time.perf_counter()
                Index(settings, embedder=embedder).ingest()
                overhead_runs.append(time.perf_counter() - t)
        finally:
            embedder.encode = real_encode  # type: ignore[method-assign]

        a_s, b_s, c_s, d_s = best(raw_runs), best(ours_runs), best(lc_runs), best(reingest_runs)
        o_s = best(overhead_runs)
        result = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "load_average_at_end": list(os.getloadavg()),
                "note": "2 cores shared with other processes; best of --repeat runs",
            },
            "corpus": {
                "source": "SQuAD v2 dev split paragraphs",
                "files": len(paragraphs),
                "chunks": len(texts),
                "tokens": tokens,
            },
            "model": str(embedder.name),
            "precision": {"a_raw_model": "fp32", "b_groundqa_ingest": embedder.precision},
            "batch_size": base.embedding_batch_size,
            "repeat": args.repeat,
            "a_raw_model": {
                "seconds": a_s,
                "chunks_per_s": len(texts) / a_s,
                "tokens_per_s": tokens / a_s,
                "runs": raw_runs,
            },
            "b_groundqa_ingest": {
                "seconds": b_s,
                "chunks_per_s": chunks_total / b_s,
                "tokens_per_s": tokens / b_s,
                "runs": ours_runs,
            },
            "c_langchain": {
                "seconds": c_s,
                "chunks": lc_chunks,
                "tokens": lc_tokens,
                "chunks_per_s": lc_chunks / c_s,
                "tokens_per_s": lc_tokens / c_s,
                "runs": lc_runs,
            },
            "d_reingest_unchanged": {"seconds": d_s, "runs": reingest_runs},
            "b_minus_a_overhead": {
                "seconds": o_s,
                "fraction_of_a": o_s / a_s,
                "runs": overhead_runs,
            },
        }
        b_tps = result["b_groundqa_ingest"]["tokens_per_s"]
        a_tps = result["a_raw_model"]["tokens_per_s"]
        c_tps = result["c_langchain"]["tokens_per_s"]
        result["goals"] = {
            "b_within_15pct_of_a": {
                "ratio_b_over_a": b_tps / a_tps,
                "met": b_tps >= 0.85 * a_tps,
                "overhead_fraction_of_a": o_s / a_s,
                "overhead_met": o_s <= 0.15 * a_s,
            },
            "b_not_slower_than_c": {"ratio_b_over_c": b_tps / c_tps, "met": b_tps >= c_tps},
            "d_under_2s": {"seconds": d_s, "met": d_s < 2.0},
        }
        spread = {
            name: max(runs) / min(runs)
            for name, runs in (
                ("a", raw_runs),
                ("b", ours_runs),
                ("c", lc_runs),
                ("d", reingest_runs),
            )
        }
        result["noise"] = {
            "run_spread_max_over_min": spread,
            "note": "when the runs of one pipeline spread more than the goals' margins, other "
            "processes' load decided the verdicts; (b) includes (a)'s work, so b/a > 1 is noise",
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["goals"], indent=2))
        print(
            f"(a) raw {a_tps:,.0f} tok/s  (b) groundqa {b_tps:,.0f} tok/s  "
            f"(c) langchain {c_tps:,.0f} tok/s  (d) re-ingest {d_s:.2f} s  -> {args.out}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
