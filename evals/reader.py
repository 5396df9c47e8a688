"""The reader alone, with the gold paragraph given: SQuAD 2.0 dev split, threshold swept.

    .venv/bin/python -m evals.reader [--model-dir DIR] [--limit N] [--json FILE]

For every question the reader reads the paragraph it was written on. Reported: how often the
best span contains a gold answer when it never abstains, the balanced operating point (the
margin threshold where the share of answerable questions answered with the gold contained
is closest to the share of unanswerable ones abstained), and the best SQuAD 2.0 F1 over
thresholds. These are the figures of the model card; the dev split is never trained on.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from evals import metrics, squad
from evals.calibrate import DEFAULT_SQUAD
from index.precision import Precision, resolve
from index.sentences import sentence_spans
from service.reader import MODEL_DIR, Reader
from service.support import shared_support


def run(
    model_dir: Path,
    squad_path: Path,
    limit: int = 0,
    with_support: bool = True,
    precision: Precision = "fp32",
) -> dict[str, Any]:
    paragraphs, questions = squad.load(squad_path)
    text = {p.source: p.context for p in paragraphs}
    if limit:
        order = np.random.default_rng(0).permutation(len(questions))[:limit]
        questions = [questions[i] for i in sorted(order)]
    reader = Reader(model_dir, precision=precision)
    reader.warmup()
    rows = []
    checks = []
    started = time.perf_counter()
    for q in questions:
        ctx = text[q.source]
        span = reader.read(q.question, [ctx])[0]
        assert span is not None
        pred = ctx[span.start : span.end]
        rows.append((q, pred, span.margin, span.answerable))
        holding = [ctx[a:b] for a, b in sentence_spans(ctx) if a < span.end and b > span.start]
        checks.append((" ".join(holding) or ctx, f"{q.question} {pred}"))
    seconds = time.perf_counter() - started
    out = figures(rows, seconds)
    if with_support:
        # the support model's check of the span (what the abstention model reads), alone and
        # combined with the reader's two scores by a logistic regression fitted out of fold
        support = shared_support(precision=precision).score(checks)
        extended = [(*r, float(p)) for r, p in zip(rows, support, strict=True)]
        combined = _out_of_fold(extended)
        out.update(
            figures(
                [(*r, c) for r, c in zip(extended, combined, strict=True)],
                seconds,
                scores=(("support", 4), ("reader_and_support", 5)),
            )
        )
    return out


def _out_of_fold(rows: list[tuple[Any, ...]]) -> list[float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    x = np.array([[r[2], r[3], np.log(r[4] + 1e-6) - np.log(1 - r[4] + 1e-6)] for r in rows])
    y = np.array([not r[0].is_impossible for r in rows])
    groups = np.array([r[0].source.split("_")[0] for r in rows])
    p = np.zeros(len(rows))
    for train, test in GroupKFold(n_splits=min(5, len(set(groups)))).split(x, y, groups):
        p[test] = (
            LogisticRegression(max_iter=1000).fit(x[train], y[train]).predict_proba(x[test])[:, 1]
        )
    return [float(v) for v in p]


def figures(
    rows: list[tuple[Any, ...]],
    seconds: float,
    scores: tuple[tuple[str, int], ...] = (("margin", 2), ("answerable", 3)),
) -> dict[str, Any]:
    has = np.array([not q.is_impossible for q, *_ in rows])
    contains = np.array(
        [bool(q.answers) and metrics.contains_any(p, q.answers) for q, p, *_ in rows]
    )
    f1 = np.array([max((metrics.f1(g, p) for g in q.answers), default=0.0) for q, p, *_ in rows])
    em = np.array(
        [max((metrics.exact_match(g, p) for g in q.answers), default=0.0) for q, p, *_ in rows]
    )
    out: dict[str, Any] = {
        "questions": len(rows),
        "answerable": int(has.sum()),
        "seconds": round(seconds, 1),
        "hasans_contains_never_abstaining": float(contains[has].mean()),
        "hasans_em_never_abstaining": float(em[has].mean()),
        "hasans_f1_never_abstaining": float(f1[has].mean()),
    }
    for name, k in scores:
        score = np.array([r[k] for r in rows])
        best_f1, best_t, balanced = -1.0, 0.0, None
        for t in np.unique(np.quantile(score, np.linspace(0, 1, 201))):
            answer = score >= t
            overall = np.where(answer, np.where(has, f1, 0.0), np.where(has, 0.0, 1.0)).mean()
            if overall > best_f1:
                best_f1, best_t = float(overall), float(t)
            answered = float((answer & contains)[has].mean())
            abstained = float((~answer)[~has].mean())
            gap = abs(answered - abstained)
            if balanced is None or gap < balanced[0]:
                balanced = (gap, float(t), answered, abstained)
        assert balanced is not None
        out[f"by_{name}"] = {
            "best_overall_f1": round(100 * best_f1, 1),
            "best_threshold": round(best_t, 3),
            "balanced_threshold": round(balanced[1], 3),
            "balanced_hasans_contains": round(balanced[2], 3),
            "balanced_noans_abstained": round(balanced[3], 3),
        }
        from sklearn.metrics import roc_auc_score

        out[f"by_{name}"]["auc_answerable_vs_not"] = round(float(roc_auc_score(has, score)), 3)
    return out


CARD = """# groundqa reader

An extractive reader with a no-answer option: given a question and a passage, it returns the
answer span, or says the passage holds none. groundqa reads every retrieved passage with it
(`service/reader.py`); its scores feed the calibrated abstention model.

## Model
- Base: {base}. Its tokenizer and word embeddings are used as they are (frozen during
  training, not shipped here); the six encoder layers and two heads were fine-tuned.
- Heads: start/end logits over the tokens ([CLS] stands for "no answer") and an
  answerability logit read from [CLS].
- File: `reader.safetensors`, {dtype}, {size_mb:.1f} MB, sha256 `{sha256}` (checked at load).

## Data and licence
Trained only on `../shared/training/`: SQuAD v1.1 train plus the 13 extra SQuAD v1.1 dev
articles (answerable questions), SQuAD 2.0 train unanswerable questions placed on their
paragraphs (Zhu et al., 2019), and negatives made by putting a question against the paragraph
of its own article that shares most of its words without containing its answer.
{mix}

The SQuAD data is CC BY-SA 4.0, so these weights are a derivative of CC BY-SA 4.0 data and are
shared under the same licence (CC BY-SA 4.0), with attribution to the SQuAD authors
(Rajpurkar et al., 2016 and 2018) and to Zhu et al. (2019). The base model is Apache-2.0.
SQuAD 2.0 dev (`../shared/benchmarks/squad2/dev-split.json`) was never trained on.

## Training
`make train-reader` (seeded; resumable from `build/reader/checkpoint.pt`; progress in
`build/reader/train.log`; `READER_DEVICE=cuda` on a GPU).
Hyper-parameters:

{hparams}

(`answerable`, `unanswerable`, `negatives`: how many of each were sampled; 0 means all.)

{training}

## Figures
SQuAD 2.0 dev split, {questions} questions ({answerable} answerable), the gold paragraph
given, measured by `python -m evals.reader`:

| | value |
|---|---:|
| HasAns: best span contains a gold answer, never abstaining | {contains:.3f} |
| HasAns EM / F1, never abstaining | {em:.1f} / {f1:.1f} |
| AUC answerable vs not, by span-over-null margin | {auc_m:.3f} |
| AUC answerable vs not, by the answerability head | {auc_a:.3f} |
| balanced point (margin): HasAns contains / NoAns abstained | {bal_c:.3f} / {bal_a:.3f} |
| best overall SQuAD 2.0 F1 over margin thresholds | {best_f1:.1f} |
| reading time for all questions, one process | {seconds:.0f} s |

Open-domain figures (retrieval, reader and calibrated abstention together) are in
`evals/RESULTS.md` and `service/abstain_model.json`.
"""


def write_card(model_dir: Path, fig: dict[str, Any]) -> Path:
    """``MODEL_CARD.md`` from the manifest the training wrote and the figures just measured."""
    manifest = json.loads((model_dir / "reader.json").read_text(encoding="utf-8"))
    # a continued run keeps the manifest of the stage it started from: oldest stage first
    stages = [manifest]
    while "previous_stage" in stages[0].get("training", {}):
        stages.insert(0, stages[0]["training"]["previous_stage"])
    hparams, mixes, trainings = [], [], []
    for n, st in enumerate(stages, 1):
        cfg, tr = st.get("config", {}), st.get("training", {})
        title = f"Stage {n} of {len(stages)}" if len(stages) > 1 else ""
        skip = ("data", "out", "work", "log", "base")
        hparams.append(
            (f"{title}:\n\n" if title else "")
            + "\n".join(f"- `{k}`: {v}" for k, v in cfg.items() if k not in skip)
        )
        mixes.append(
            (f"{title}: " if title else "This version: ")
            + f"{tr.get('answerable', '?')} answerable, "
            f"{tr.get('unanswerable', '?')} unanswerable and {tr.get('negative', '?')} "
            f"same-article negative pairs ({tr.get('windows', '?')} windows of at most "
            f"{cfg.get('max_length', '?')} tokens)."
        )
        trainings.append(
            (f"{title}: t" if title else "T") + f"rained for {tr.get('steps', '?')} steps in "
            f"{tr.get('train_seconds', 0) / 60:.1f} minutes on "
            f"{tr.get('hardware', '2 CPU cores')} "
            f"({tr.get('tokens_per_second', '?')} tokens/s, bfloat16 autocast)."
        )
    cfg = manifest.get("config", {})
    hparams_text, mix, training = "\n\n".join(hparams), " ".join(mixes), " ".join(trainings)
    text = CARD.format(
        base=manifest.get("base", "all-MiniLM-L6-v2"),
        dtype=manifest.get("dtype", "float16"),
        size_mb=(model_dir / "reader.safetensors").stat().st_size / 1e6,
        sha256=manifest.get("sha256"),
        mix=mix,
        hparams=hparams_text,
        training=training,
        questions=fig["questions"],
        answerable=fig["answerable"],
        contains=fig["hasans_contains_never_abstaining"],
        em=100 * fig["hasans_em_never_abstaining"],
        f1=100 * fig["hasans_f1_never_abstaining"],
        auc_m=fig["by_margin"]["auc_answerable_vs_not"],
        auc_a=fig["by_answerable"]["auc_answerable_vs_not"],
        bal_c=fig["by_margin"]["balanced_hasans_contains"],
        bal_a=fig["by_margin"]["balanced_noans_abstained"],
        best_f1=fig["by_margin"]["best_overall_f1"],
        seconds=fig["seconds"],
    )
    path = model_dir / "MODEL_CARD.md"
    # sections written by hand (alternatives measured, notes on a run) are kept, before the
    # figures
    kept = _hand_written(path.read_text(encoding="utf-8")) if path.is_file() else ""
    if kept:
        text = text.replace("## Figures\n", kept + "\n\n## Figures\n", 1)
    path.write_text(text, encoding="utf-8")
    return path


_GENERATED = ("## Model", "## Data and licence", "## Training", "## Figures")


def _hand_written(card: str) -> str:
    """The card's sections whose headings the template does not write."""
    sections = re.split(r"(?m)^(?=## )", card)
    return "\n\n".join(
        s.strip() for s in sections if s.startswith("## ") and not s.startswith(_GENERATED)
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    ap.add_argument("--squad", type=Path, default=DEFAULT_SQUAD)
    ap.add_argument("--limit", type=int, default=0, help="a seeded sample of N questions")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--card", action="store_true", help="also write MODEL_CARD.md in --model-dir")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16", "int8"), default="auto")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    precision = resolve(args.precision)
    result = run(args.model_dir, args.squad, args.limit, precision=precision)
    result["precision"] = precision
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    if args.card:
        print(f"wrote {write_card(args.model_dir, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
