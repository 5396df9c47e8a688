"""Model formats: fp32 against bf16, int8 and the alternatives, speed against quality, in one run.

Run: ``.venv/bin/python -m bench.precision [--formats fp32,int8,...] [--out FILE]``; writes
``bench/results/precision.json`` by default.

Every model groundqa runs is measured in each number format, on the SQuAD 2.0 dev split
(never trained on):
- the retrieval embedder (packaged all-MiniLM-L6-v2): dense gold-paragraph recall@1/@5 of the
  answerable questions over the 341 paragraphs, tokens/s embedding the paragraphs (best of
  three), and the mean cosine of each paragraph's vector with its fp32 vector;
- the reader, with the gold paragraph given: HasAns EM/F1 never abstaining and the AUC of
  its answer-versus-no-answer margin (``evals.reader``), and the median time to read five
  paragraphs of one article for one question, as the pipeline does (150 questions);
- the support model: AUC on the pairs of ``evals.support``.

The formats groundqa runs (``GROUNDQA_MODEL_PRECISION``): fp32 and bf16 in PyTorch (bf16
converts the encoder; the heads stay fp32), and int8: the fp32 network exported to ONNX, its
MatMul weights quantized per channel and run by ONNX Runtime (``index.int8``). Measured
beside them: ``torch-int8``, PyTorch's dynamic quantization of the Linear layers, weights per
channel (per tensor lost more), ``onnx-fp32``, the exported graph unquantized, and
``int8-serial``: int8 with a batch's rows run one after another on all threads instead of side
by side, one core each (``OnnxModule.side_by_side``).

``--speed-only`` skips the reader's and the support model's quality evaluations (minutes per
format) and keeps the timings and the embedder's recall.

The issue's bars: recall@5 may drop by at most 0.5 points and reader F1 by at most 1 point.
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

from index.precision import Precision

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SQUAD = ROOT.parent / "shared" / "benchmarks" / "squad2" / "dev-split.json"
OUT = ROOT / "bench" / "results" / "precision.json"
MAX_RECALL_DROP_POINTS = 0.5
MAX_F1_DROP_POINTS = 1.0
FORMATS = ("fp32", "bf16", "int8", "int8-serial", "torch-int8", "onnx-fp32")
SERVED = ("fp32", "bf16", "int8")  # the formats GROUNDQA_MODEL_PRECISION offers


def recall(qv: np.ndarray, pv: np.ndarray, gold: np.ndarray, k: int) -> float:
    top = np.argsort(-(qv @ pv.T), axis=1)[:, :k]
    return float(np.mean([g in row for g, row in zip(gold, top, strict=True)]))


def torch_int8(module: Any) -> Any:
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig

    linear = {
        name: per_channel_dynamic_qconfig
        for name, m in module.named_modules()
        if isinstance(m, torch.nn.Linear)
    }
    return torch.ao.quantization.quantize_dynamic(module, linear, dtype=torch.qint8)


def embedding_model(fmt: str, path: str) -> Any:
    from sentence_transformers import SentenceTransformer

    from index.int8 import onnx_sentence_transformer
    from index.precision import cast

    model = SentenceTransformer(path, device="cpu")
    match fmt:
        case "torch-int8":
            return torch_int8(model)
        case "int8" | "int8-serial" | "onnx-fp32":
            return onnx_sentence_transformer(
                model,
                identity="bench",
                quantize=fmt != "onnx-fp32",
                side_by_side=fmt != "int8-serial",
            )
        case _:
            return cast(model, "bf16" if fmt == "bf16" else "fp32")


def embedder(paragraphs: list[Any], questions: list[Any], formats: list[str]) -> dict[str, Any]:
    from index.embedding import model_path
    from index.settings import IndexSettings

    docs = [f"{p.title}\n\n{p.context}" for p in paragraphs]
    index_of = {p.source: i for i, p in enumerate(paragraphs)}
    asked = [q for q in questions if not q.is_impossible]
    gold = np.array([index_of[q.source] for q in asked])
    path = str(model_path(IndexSettings().embedding_model))
    out: dict[str, Any] = {"paragraphs": len(docs), "questions": len(asked)}
    reference: np.ndarray | None = None
    for fmt in formats:
        model = embedding_model(fmt, path)
        if "tokens" not in out:
            enc = model.tokenizer(docs, truncation=True, max_length=model.max_seq_length)
            out["tokens"] = sum(len(ids) for ids in enc["input_ids"])
        kw: dict[str, Any] = {"batch_size": 64, "normalize_embeddings": True}
        model.encode(docs[:64], **kw)
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            pv = np.asarray(model.encode(docs, **kw), dtype=np.float32)
            runs.append(time.perf_counter() - t0)
        qv = np.asarray(model.encode([q.question for q in asked], **kw), dtype=np.float32)
        reference = pv if reference is None else reference
        out[fmt] = {
            "tokens_per_s": round(out["tokens"] / min(runs), 1),
            "recall@1": round(recall(qv, pv, gold, 1), 4),
            "recall@5": round(recall(qv, pv, gold, 5), 4),
            "cosine_to_fp32_mean": round(float(np.mean(np.sum(pv * reference, axis=1))), 5),
            "cosine_to_fp32_min": round(float(np.min(np.sum(pv * reference, axis=1))), 5),
        }
        print("embedder", fmt, out[fmt], flush=True)
    return out


def reader(
    paragraphs: list[Any], questions: list[Any], formats: list[str], quality: bool = True
) -> dict[str, Any]:
    from evals import reader as reader_eval
    from service import reader as service_reader

    # five paragraphs of the question's article, its own first, as retrieval hands them over
    by_article: dict[str, list[str]] = {}
    for p in paragraphs:
        by_article.setdefault(p.source.split("_")[0], []).append(p.context)
    text = {p.source: p.context for p in paragraphs}
    rng = np.random.default_rng(1)
    sample = [questions[i] for i in rng.permutation(len(questions))[:150]]
    reads = []
    for q in sample:
        others = [c for c in by_article[q.source.split("_")[0]] if c != text[q.source]]
        reads.append((q.question, [text[q.source], *rng.choice(others, 4, replace=False)]))

    out: dict[str, Any] = {"read5_questions": len(reads)}
    load = service_reader.Reader._load
    for fmt in formats:
        served = fmt if fmt in SERVED else "fp32"
        precision: Precision = served  # type: ignore[assignment]

        def _load(self: Any, fmt: str = fmt) -> None:
            load(self)
            if fmt == "torch-int8":
                self._net.encoder = torch_int8(self._net.encoder)
            elif fmt in ("int8-serial", "onnx-fp32"):
                net = self._net
                self._net = service_reader.onnx_network(
                    lambda: net,
                    self._tokenizer,
                    ("start", "end", "answerable"),
                    identity="bench",
                    quantize=fmt == "int8-serial",
                    side_by_side=False,
                )

        service_reader.Reader._load = _load  # type: ignore[method-assign]
        try:
            r = service_reader.Reader(precision=precision)
            r.warmup()
            for q, ps in reads[:10]:
                r.read(q, ps)
            ms = []
            for q, ps in reads:
                t0 = time.perf_counter()
                r.read(q, ps)
                ms.append((time.perf_counter() - t0) * 1000)
            fig = (
                reader_eval.run(
                    service_reader.MODEL_DIR, SQUAD, with_support=False, precision=precision
                )
                if quality
                else None
            )
        finally:
            service_reader.Reader._load = load  # type: ignore[method-assign]
        out[fmt] = {
            "read5_median_ms": round(float(np.median(ms)), 1),
            "read5_p90_ms": round(float(np.percentile(ms, 90)), 1),
        }
        if fig is not None:
            out[fmt] |= {
                "hasans_em": round(100 * fig["hasans_em_never_abstaining"], 2),
                "hasans_f1": round(100 * fig["hasans_f1_never_abstaining"], 2),
                "hasans_contains": round(fig["hasans_contains_never_abstaining"], 4),
                "auc_answerable_vs_not": fig["by_margin"]["auc_answerable_vs_not"],
                "best_overall_f1": fig["by_margin"]["best_overall_f1"],
            }
        print("reader", fmt, out[fmt], flush=True)
    return out


def support(formats: list[str]) -> dict[str, Any]:
    from evals import support as support_eval
    from service import support as service_support

    out: dict[str, Any] = {}
    for fmt in (f for f in formats if f in SERVED):
        fig = support_eval.measure(SQUAD, limit=200, precision=fmt)  # type: ignore[arg-type]
        out[fmt] = {"pairs": fig["pairs"], **fig["support_model"]}
        service_support.shared_support.cache_clear()
        print("support", fmt, out[fmt], flush=True)
    return out


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main(argv: list[str] | None = None) -> None:
    import argparse

    from evals import squad
    from index.precision import native_bf16

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", default=",".join(FORMATS), help="comma-separated; fp32 first")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--speed-only", action="store_true", help="skip the reader and support evals")
    args = ap.parse_args(argv)
    formats = args.formats.split(",")
    if formats[0] != "fp32" or not set(formats) <= set(FORMATS):
        ap.error(f"--formats: fp32 first, then any of {FORMATS}")
    paragraphs, questions = squad.load(SQUAD)
    emb = embedder(paragraphs, questions, formats)
    rd = reader(paragraphs, questions, formats, quality=not args.speed_only)
    sup = {} if args.speed_only else support(formats)

    def verdict(fmt: str) -> dict[str, Any]:
        drop_r5 = 100 * (emb["fp32"]["recall@5"] - emb[fmt]["recall@5"])
        out = {
            "embedder_speedup": round(emb[fmt]["tokens_per_s"] / emb["fp32"]["tokens_per_s"], 2),
            "reader_speedup": round(rd["fp32"]["read5_median_ms"] / rd[fmt]["read5_median_ms"], 2),
            "recall@5_drop_points": round(drop_r5, 2),
        }
        if "hasans_f1" in rd[fmt]:
            drop_f1 = rd["fp32"]["hasans_f1"] - rd[fmt]["hasans_f1"]
            out["reader_f1_drop_points"] = round(drop_f1, 2)
            out["adoptable"] = drop_r5 <= MAX_RECALL_DROP_POINTS and drop_f1 <= MAX_F1_DROP_POINTS
        return out

    result = {
        "bench": "precision",
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "native_bf16": native_bf16(),
            "cpu": cpu_model(),
        },
        "embedder": emb,
        "reader": rd,
        "support": sup,
        "quality_measured": not args.speed_only,
        **{fmt: verdict(fmt) for fmt in formats[1:]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
