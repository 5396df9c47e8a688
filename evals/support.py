"""Measure the support model on pairs built from the SQuAD 2.0 dev split (never trained on).

    .venv/bin/python -m evals.support [--json FILE] [--limit N]

The pairs are built from the dev split's articles exactly as ``service.train_support`` builds
its training pairs, so each kind (a question with its answer, with a SQuAD 2.0 unanswerable
question's plausible answer, the question echoed, a fragment, a changed number, a swapped
name, another sentence of the paragraph, ...) is measured on articles the model never saw.
Beside it, in the same run, the score the verifier used before the support model: embedding
similarity of claim and span blended half and half with the share of the claim's content
words the span contains.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

from evals.calibrate import DEFAULT_SQUAD
from index.precision import Precision, resolve


def similarity_baseline(pairs: list[tuple[str, str]]) -> np.ndarray:
    """The verifier's score before the support model: 0.5 cosine + 0.5 content coverage."""
    from index.embedding import get_embedder
    from index.settings import IndexSettings
    from service import text as tx

    emb = get_embedder(IndexSettings())
    texts = list(dict.fromkeys(t for pair in pairs for t in pair))
    vecs = dict(zip(texts, np.asarray(emb.encode(texts), dtype=np.float32), strict=True))
    out = []
    for premise, claim in pairs:
        stems = set(tx.content_stems(claim))
        have = set(tx.content_stems(premise))
        cov = sum(s in have for s in stems) / len(stems) if stems else 1.0
        out.append(0.5 * float(vecs[premise] @ vecs[claim]) + 0.5 * cov)
    return np.array(out)


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def measure(
    squad: Path, limit: int, seed: int = 5, precision: Precision = "fp32"
) -> dict[str, Any]:
    from service.support import shared_support
    from service.train_support import squad_pairs

    articles = json.loads(squad.read_text(encoding="utf-8"))["data"]
    rng = random.Random(seed)
    kinds = squad_pairs(articles, rng)
    pairs = []
    for _, items in sorted(kinds.items()):
        rng.shuffle(items)
        pairs.extend(items[:limit])
    xy = [(p.premise, p.hypothesis) for p in pairs]
    y = np.array([p.label for p in pairs])
    model = shared_support(precision=precision).score(xy)
    base = similarity_baseline(xy)
    out: dict[str, Any] = {"pairs": len(pairs), "data": squad.name, "by_kind": {}}
    for name, score in (("support_model", model), ("similarity_coverage", base)):
        out[name] = {
            "auc": round(_auc(y, score), 4),
            "accuracy_at_0.5": round(float(((score >= 0.5) == (y == 1)).mean()), 4),
        }
    for kind in sorted(kinds):
        m = np.array([p.kind == kind for p in pairs])
        if not m.any():
            continue
        label = int(y[m][0])
        out["by_kind"][kind] = {
            "label": "supported" if label else "not supported",
            "pairs": int(m.sum()),
            # the share judged right at the verifier's threshold (0.5)
            "support_model_right": round(float(((model[m] >= 0.5) == (label == 1)).mean()), 4),
            "similarity_coverage_right": round(float(((base[m] >= 0.5) == (label == 1)).mean()), 4),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--squad", type=Path, default=DEFAULT_SQUAD)
    ap.add_argument("--limit", type=int, default=300, help="pairs of each kind")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16", "int8"), default="auto")
    args = ap.parse_args(argv)
    precision = resolve(args.precision)
    result = measure(args.squad, args.limit, precision=precision)
    result["precision"] = precision
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
