"""Train the support model (``service/support.py``): ``make train-support``.

One binary cross-encoder, premise = a passage span, hypothesis = a claim, label = "the span
supports the claim". Pairs, all from ``../shared/training/`` (never SQuAD 2.0 dev):

* ``nli/``: SNLI and ConjNLI; entailment is support, neutral and contradiction are not.
* question-answer pairs: the sentence holding a SQuAD answer against "question answer"
  (supported), against a SQuAD 2.0 unanswerable question with its plausible answer (not: the
  question changed one word), and against the question with another answer of the paragraph
  (not). This is the check the abstention model reads.
* claim pairs, the failures a generative answer makes against the passage it cites:
  the question made a statement with its answer (supported) or with another answer (not);
  the question echoed back; an empty fragment ("It includes:"); another sentence of the
  same paragraph (on topic, not stated here); a changed number; a swapped name.

The run is seeded, logs JSON lines to ``--log`` and checkpoints every ``--checkpoint-every``
steps; ``--resume`` continues with the same order and schedule. At the end it writes fp16
weights (embeddings excluded, as for the reader), their sha256 and a manifest to ``--out``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from service.train_reader import DATA, Log, _save_atomic

_SENT = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")
_NUM = re.compile(r"\b\d[\d,]*(?:\.\d+)?\b")
_NAME = re.compile(r"\b[A-Z][\w'-]+(?:\s+(?:of\s+|the\s+)?[A-Z][\w'-]+)*")
_DO = frozenset(["did", "does", "do"])
_AUX = frozenset(
    [
        "did",
        "does",
        "do",
        "is",
        "was",
        "are",
        "were",
        "has",
        "have",
        "had",
        "can",
        "could",
        "will",
        "would",
        "should",
        "may",
        "might",
    ]
)
_WH = frozenset(["who", "what", "which"])


@dataclass(frozen=True, slots=True)
class Pair:
    premise: str
    hypothesis: str
    label: float  # 1: the premise supports the hypothesis
    kind: str


@dataclass(slots=True)
class Config:
    data: str = str(DATA)
    out: str = "service/models/support"
    work: str = "build/support"
    log: str = "build/support/train.log"
    seed: int = 17
    nli: int = 12_000  # NLI pairs sampled (all: 0)
    qa: int = 6_000  # of each question-answer kind
    claims: int = 2_000  # of each claim kind
    max_articles: int = 0  # read only the first N articles (smoke tests); 0 = all
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 5e-5
    warmup: float = 0.06
    weight_decay: float = 0.01
    max_length: int = 128
    checkpoint_every: int = 200
    threads: int = 0
    bf16: bool = True
    max_steps: int = 0
    resume: bool = False


def sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans by punctuation: good enough to cut training premises."""
    out, at = [], 0
    for m in _SENT.finditer(text):
        out.append((at, m.start()))
        at = m.end()
    out.append((at, len(text)))
    return [(a, b) for a, b in out if text[a:b].strip()]


def holding(text: str, a: int, b: int) -> str | None:
    """The sentence (or sentences) of ``text`` that hold ``[a, b)``."""
    spans = [s for s in sentences(text) if s[0] < b and s[1] > a]
    if not spans:
        return None
    return text[spans[0][0] : spans[-1][1]].strip()


def statement(question: str, answer: str) -> str | None:
    """The question as a statement with its answer, for subject questions only ("Who founded
    X?" -> "A founded X.", "Which company was sold?" -> "A was sold."); None for the rest,
    whose word order a rule cannot undo ("When did X end?")."""
    words = question.strip().rstrip("?").split()
    if len(words) < 3 or words[0].lower() not in _WH:
        return None
    second = words[1].lower()
    if second in _DO:
        return None
    if words[0].lower() == "who" or second in _AUX:
        return f"{answer} {' '.join(words[1:])}."
    if len(words) > 3 and words[2].lower() in _AUX:  # "Which company was ..."
        return f"{answer} {' '.join(words[2:])}."
    return None


def _other_span(sentence: str, answer: str, rng: random.Random) -> str | None:
    """Another name, number or short phrase of ``sentence`` than ``answer``: the wrong answer
    a reader picks from the right sentence."""
    names = [m.group() for m in _NAME.finditer(sentence)]
    cands = [
        c
        for c in names + _NUM.findall(sentence)
        if c.lower() not in answer.lower() and answer.lower() not in c.lower()
    ]
    return rng.choice(cands) if cands else None


def _spliced(first: str, second: str) -> str | None:
    """The start of ``first`` finished with the end of ``second``: each half is on topic, the
    claim as a whole is stated nowhere (an invented cause, a borrowed consequence)."""
    a, b = first.rstrip(".").split(), second.rstrip(".").split()
    if len(a) < 6 or len(b) < 6:
        return None
    return " ".join(a[: len(a) // 2] + b[len(b) // 2 :]) + "."


def _antonym(sentence: str, opposite: dict[str, frozenset[str]], rng: random.Random) -> str | None:
    words = sentence.split()
    places = [i for i, w in enumerate(words) if w.lower().strip(".,;") in opposite]
    if not places:
        return None
    i = rng.choice(places)
    bare = words[i].lower().strip(".,;")
    words[i] = words[i].lower().replace(bare, sorted(opposite[bare])[0])
    return " ".join(words)


def _nli(cfg: Config, rng: random.Random) -> list[Pair]:
    with gzip.open(Path(cfg.data) / "nli" / "nli-pairs.tsv.gz", "rt", encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    rng.shuffle(rows)
    rows = rows[: cfg.nli or None]
    return [
        Pair(p.strip(), h.strip(), float(label == "entailment"), f"nli-{src}")
        for src, p, h, label in rows
    ]


def load_pairs(cfg: Config) -> list[Pair]:
    """The training pairs, in a seeded order."""
    rng = random.Random(cfg.seed)
    root = Path(cfg.data)
    articles: list[dict[str, Any]] = []
    for name in ("squad-train.json.gz", "squad11-dev-extra.json.gz"):
        with gzip.open(root / name, "rt", encoding="utf-8") as f:
            articles.extend(json.load(f)["data"])
    if cfg.max_articles:
        articles = articles[: cfg.max_articles]
    kinds = squad_pairs(articles, rng)
    pairs = _nli(cfg, rng)
    for kind, items in sorted(kinds.items()):
        rng.shuffle(items)
        limit = cfg.qa if kind.startswith("qa-") else cfg.claims
        if kind in ("claim-copy", "claim-statement"):  # the claims' only positives
            limit *= 3
        pairs.extend(items[:limit])
    rng.shuffle(pairs)
    return pairs


def squad_pairs(articles: list[dict[str, Any]], rng: random.Random) -> dict[str, list[Pair]]:
    """The question-answer and claim pairs of SQuAD-format ``articles``, by kind."""
    from service.lexicon import antonyms

    opposite = antonyms()
    kinds: dict[str, list[Pair]] = {}

    def add(kind: str, premise: str | None, hypothesis: str, label: float) -> None:
        if premise and hypothesis.strip():
            kinds.setdefault(kind, []).append(Pair(premise, hypothesis, label, kind))

    for art in articles:
        answers_of_article = [
            qa["answers"][0]["text"]
            for p in art["paragraphs"]
            for qa in p["qas"]
            if qa["answers"] and len(qa["answers"][0]["text"].split()) <= 5
        ]
        for p in art["paragraphs"]:
            ctx = p["context"]
            sents = [ctx[a:b].strip() for a, b in sentences(ctx)]
            answered = [
                (qa["question"].strip(), qa["answers"][0])
                for qa in p["qas"]
                if not qa.get("is_impossible") and qa["answers"]
            ]
            for qa in p["qas"]:
                q = qa["question"].strip()
                if qa.get("is_impossible"):
                    for pa in qa.get("plausible_answers", [])[:1]:
                        a0 = int(pa["answer_start"])
                        prem = holding(ctx, a0, a0 + len(pa["text"]))
                        add("qa-unanswerable", prem, f"{q} {pa['text']}", 0.0)
                        st = statement(q, pa["text"])
                        if st:
                            add("claim-unanswerable", prem, st, 0.0)
                    continue
                if not qa["answers"]:
                    continue
                ans = qa["answers"][0]
                text, a0 = ans["text"], int(ans.get("answer_start", -1))
                if a0 < 0 or ctx[a0 : a0 + len(text)] != text:
                    a0 = ctx.find(text)
                if a0 < 0:
                    continue
                prem = holding(ctx, a0, a0 + len(text))
                if not prem:
                    continue
                add("qa-answer", prem, f"{q} {text}", 1.0)
                add("claim-echo", prem, q, 0.0)
                # another name or number of the same sentence: right sentence, wrong answer
                wrong = _other_span(prem, text, rng)
                if wrong:
                    add("qa-wrong-span", prem, f"{q} {wrong}", 0.0)
                    add("claim-wrong-span", prem, statement(q, wrong) or "", 0.0)
                # another answer of the paragraph, not in this sentence: the wrong thing
                others = [o for _, o in answered if o["text"].lower() not in prem.lower()]
                if others:
                    other = rng.choice(others)
                    o0 = int(other.get("answer_start", ctx.find(other["text"])))
                    add(
                        "qa-other",
                        holding(ctx, o0, o0 + len(other["text"])) or prem,
                        f"{q} {other['text']}",
                        0.0,
                    )
                st = statement(q, text)
                if st:
                    add("claim-statement", prem, st, 1.0)
                    swaps = [o for o in answers_of_article if o.lower() not in prem.lower()]
                    if swaps:
                        add("claim-swapped", prem, statement(q, rng.choice(swaps)) or "", 0.0)
                # the answer's sentence with its answer swapped for another of the article
                swaps = [o for o in answers_of_article if o.lower() not in prem.lower()]
                if swaps and text in prem:
                    add("claim-swapped", prem, prem.replace(text, rng.choice(swaps), 1), 0.0)
            for i, s in enumerate(sents):
                if len(s.split()) < 6:
                    continue
                nxt = sents[i + 1] if i + 1 < len(sents) else ""
                # a sentence is supported by itself and by the pair it opens
                add("claim-copy", f"{s} {nxt}".strip() if rng.random() < 0.5 else s, s, 1.0)
                # another sentence of the paragraph: on topic, not stated here
                far = [t for j, t in enumerate(sents) if abs(j - i) > 1 and len(t.split()) >= 6]
                if far:
                    other = rng.choice(far)
                    add("claim-other-sentence", s, other, 0.0)
                    add("claim-spliced", s, _spliced(s, other) or "", 0.0)
                words = s.split()
                add("claim-fragment", s, " ".join(words[: rng.randint(1, 4)]) + ":", 0.0)
                add("claim-antonym", s, _antonym(s, opposite, rng) or "", 0.0)
                nums = _NUM.findall(s)
                if nums:
                    n = rng.choice(nums)
                    digits = n.replace(",", "")
                    try:
                        changed = str(int(float(digits)) + rng.choice([1, 2, 3, 5, 10, 100]))
                    except ValueError:
                        continue
                    add("claim-number", s, s.replace(n, changed, 1), 0.0)
    return kinds


def encode(cfg: Config, pairs: list[Pair], tokenizer: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(pairs), 2048):
        part = pairs[i : i + 2048]
        enc = tokenizer(
            [p.premise for p in part],
            [p.hypothesis for p in part],
            truncation="longest_first",
            max_length=cfg.max_length,
        )
        for k, p in enumerate(part):
            out.append(
                {
                    "input_ids": enc["input_ids"][k],
                    "token_type_ids": enc["token_type_ids"][k],
                    "label": p.label,
                }
            )
    return out


def train(cfg: Config) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    from service.reader import _minilm_path
    from service.support import build_network
    from service.train_reader import batches, collate

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    work = Path(cfg.work)
    work.mkdir(parents=True, exist_ok=True)
    log = Log(Path(cfg.log))
    base = _minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    t0 = time.time()
    pairs = load_pairs(cfg)
    counts: dict[str, int] = {}
    for p in pairs:
        counts[p.kind] = counts.get(p.kind, 0) + 1
    rows = encode(cfg, pairs, tokenizer)
    for r in rows:  # the reader's batching and collation expect span labels
        r["start"] = r["end"] = 0
        r["answerable"] = r["label"]
    n_tokens = sum(len(r["input_ids"]) for r in rows)
    log(
        event="data",
        pairs=len(pairs),
        tokens=n_tokens,
        positive=sum(p.label for p in pairs),
        seconds=round(time.time() - t0, 1),
        kinds=counts,
    )
    net = build_network(base)
    # frozen word embeddings: they ship with MiniLM's package, so only the rest is committed
    for p in net.encoder.embeddings.parameters():
        p.requires_grad = False
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [
            {
                "params": [p for p in params if p.ndim > 1],
                "weight_decay": cfg.weight_decay,
            },
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )
    bcfg = _BatchCfg(cfg.seed, cfg.batch_size)
    per_epoch = len(batches(bcfg, rows, 0))  # type: ignore[arg-type]
    total = math.ceil(per_epoch * cfg.epochs)
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    sched = get_linear_schedule_with_warmup(opt, int(total * cfg.warmup), total)
    step, seen, elapsed_before = 0, 0, 0.0
    ckpt = work / "checkpoint.pt"
    if cfg.resume and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        net.load_state_dict(state["net"], strict=False)
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step, seen, elapsed_before = state["step"], state["tokens"], state["elapsed"]
        log(event="resume", step=step)
    from service.support import trainable_state

    bce = torch.nn.BCEWithLogitsLoss()
    net.train()
    started = time.time()
    win_tokens, win_started, losses = 0, time.time(), []

    def checkpoint() -> None:
        _save_atomic(
            {
                "net": trainable_state(net),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "step": step,
                "tokens": seen,
                "elapsed": elapsed_before + time.time() - started,
                "config": asdict(cfg),
            },
            ckpt,
        )

    s = 0
    epoch = 0
    while s < total:
        for idx in batches(bcfg, rows, epoch):  # type: ignore[arg-type]
            if s >= total:
                break
            if s < step:
                s += 1
                continue
            b = collate(rows, idx)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                logit = net(b["input_ids"], b["attention_mask"], b["token_type_ids"])
            loss = bce(logit.float(), b["answerable"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            s += 1
            step = s
            ntok = int(b["attention_mask"].sum())
            seen += ntok
            win_tokens += ntok
            losses.append(float(loss.detach()))
            if step % 20 == 0 or step == total:
                dt = time.time() - win_started
                log(
                    event="step",
                    step=step,
                    total=total,
                    loss=round(sum(losses) / len(losses), 4),
                    lr=sched.get_last_lr()[0],
                    tokens_per_s=round(win_tokens / max(dt, 1e-9)),
                    elapsed=round(elapsed_before + time.time() - started),
                )
                losses, win_tokens, win_started = [], 0, time.time()
            if step % cfg.checkpoint_every == 0:
                checkpoint()
        epoch += 1
    checkpoint()
    elapsed = elapsed_before + time.time() - started
    summary = {
        "pairs": len(pairs),
        "kinds": counts,
        "tokens_per_epoch": n_tokens,
        "steps": step,
        "train_seconds": round(elapsed),
        "tokens_per_second": round(seen / max(elapsed, 1e-9)),
    }
    log(event="done", **summary)
    export(net, Path(cfg.out), cfg, summary)
    return summary


@dataclass(frozen=True, slots=True)
class _BatchCfg:
    seed: int
    batch_size: int


def export(net: Any, out: Path, cfg: Config, summary: dict[str, Any]) -> None:
    """fp16 weights (without the frozen embeddings) and a manifest naming their sha256."""
    from service.support import MANIFEST, WEIGHTS
    from service.train_reader import export as write

    write(net, out, cfg, summary, weights=WEIGHTS, manifest_name=MANIFEST)


def export_checkpoint(cfg: Config) -> None:
    """Write the fp16 model from the last checkpoint (a run stopped early, or still running)."""
    import torch

    from service.reader import _minilm_path
    from service.support import build_network

    state = torch.load(Path(cfg.work) / "checkpoint.pt", weights_only=False)
    net = build_network(_minilm_path())
    net.load_state_dict(state["net"], strict=False)
    summary = {
        "steps": state["step"],
        "train_seconds": round(state["elapsed"]),
        "tokens_seen": state["tokens"],
        "from_checkpoint": True,
    }
    export(net, Path(cfg.out), Config(**state["config"]), summary)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m service.train_support", description=__doc__.split("\n")[0]
    )
    for name, default in asdict(Config()).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            p.add_argument(flag, type=type(default), default=default)
    p.add_argument("--export-checkpoint", action="store_true")
    p.add_argument("--show", type=int, default=0, help="print N pairs of each kind and stop")
    args = vars(p.parse_args(argv))
    only_export = args.pop("export_checkpoint")
    show = args.pop("show")
    cfg = Config(**args)
    if show:
        seen: dict[str, int] = {}
        for pair in load_pairs(cfg):
            if seen.get(pair.kind, 0) < show:
                seen[pair.kind] = seen.get(pair.kind, 0) + 1
                print(json.dumps(asdict(pair)))
    elif only_export:
        export_checkpoint(cfg)
    else:
        train(cfg)


if __name__ == "__main__":
    main()
