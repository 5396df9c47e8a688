"""int8 for the retrieval embedder: speed against quality, measured before adopting it.

Run: ``.venv/bin/python -m bench.int8``; writes ``bench/results/int8.json``.

The packaged all-MiniLM-L6-v2 in fp32 (baseline) and with PyTorch dynamic int8 quantization
of its Linear layers (the CPUs have VNNI) embed, in the same run:
- the SQuAD 2.0 dev split's 341 paragraphs (as ``title\\n\\ncontext`` documents) and its
  answerable questions: dense gold-paragraph recall@1/@5 for each;
- the same paragraphs again for throughput (tokens/s, best of three).

The issue's bar: adopt int8 only if recall@5 drops by at most 0.5 points.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
SQUAD = ROOT.parent / "shared" / "benchmarks" / "squad2" / "dev-split.json"
OUT = ROOT / "bench" / "results" / "int8.json"
MAX_DROP_POINTS = 0.5


def recall(qv: np.ndarray, pv: np.ndarray, gold: np.ndarray, k: int) -> float:
    top = np.argsort(-(qv @ pv.T), axis=1)[:, :k]
    return float(np.mean([g in row for g, row in zip(gold, top, strict=True)]))


def main() -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    from evals import squad
    from index.embedding import model_path
    from index.settings import IndexSettings

    paragraphs, questions = squad.load(SQUAD)
    docs = [f"{p.title}\n\n{p.context}" for p in paragraphs]
    index_of = {p.source: i for i, p in enumerate(paragraphs)}
    asked = [q for q in questions if not q.is_impossible]
    gold = np.array([index_of[q.source] for q in asked])
    path = str(model_path(IndexSettings().embedding_model))
    fp32 = SentenceTransformer(path, device="cpu")
    int8 = torch.ao.quantization.quantize_dynamic(
        SentenceTransformer(path, device="cpu"), {torch.nn.Linear}, dtype=torch.qint8
    )
    tokens = sum(
        len(ids)
        for ids in fp32.tokenizer(docs, truncation=True, max_length=fp32.max_seq_length)[
            "input_ids"
        ]
    )
    out: dict[str, Any] = {}
    for name, model in (("fp32", fp32), ("int8", int8)):
        kw: dict[str, Any] = {"batch_size": 64, "normalize_embeddings": True}
        model.encode(docs[:64], **kw)
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            pv = model.encode(docs, **kw)
            runs.append(time.perf_counter() - t0)
        qv = model.encode([q.question for q in asked], **kw)
        out[name] = {
            "tokens_per_s": round(tokens / min(runs), 1),
            "recall@1": round(recall(qv, pv, gold, 1), 4),
            "recall@5": round(recall(qv, pv, gold, 5), 4),
        }
        print(name, out[name], flush=True)
    drop = (out["fp32"]["recall@5"] - out["int8"]["recall@5"]) * 100
    result = {
        "bench": "int8",
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "paragraphs": len(docs),
        "questions": len(asked),
        "tokens": tokens,
        **out,
        "speedup": round(out["int8"]["tokens_per_s"] / out["fp32"]["tokens_per_s"], 2),
        "recall@5_drop_points": round(drop, 2),
        "adoptable": drop <= MAX_DROP_POINTS,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
