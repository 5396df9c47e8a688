"""The reader: the shipped weights (real model), their integrity check, and the training script."""

from __future__ import annotations

import dataclasses
import difflib
import json
import random
import shutil
from pathlib import Path

import pytest

from index.settings import IndexSettings
from service.reader import (
    MANIFEST,
    MODEL_DIR,
    WEIGHTS,
    Reader,
    ReaderIntegrityError,
    padded_batch,
    sha256_of,
)
from service.train_reader import DATA, Config, Example, load_examples, swapped, train

PASSAGE = (
    "The Normans were the people who in the 10th and 11th centuries gave their name to "
    "Normandy, a region in France. They were descended from Norse raiders and pirates from "
    "Denmark, Iceland and Norway who, under their leader Rollo, agreed to swear fealty to "
    "King Charles III of West Francia."
)
UNRELATED = (
    "The boiling point of water at sea level is 100 degrees Celsius. At higher altitudes "
    "the air pressure is lower, so water boils at a lower temperature."
)


@pytest.fixture(scope="module")
def reader() -> Reader:
    # as the service runs it (int8 on a CPU)
    settings = IndexSettings()
    r = Reader(precision=settings.precision, cache_dir=settings.model_cache_dir)
    r.warmup()
    return r


def test_shipped_weights_match_their_manifest() -> None:
    manifest = json.loads((MODEL_DIR / MANIFEST).read_text(encoding="utf-8"))
    assert sha256_of(MODEL_DIR / WEIGHTS) == manifest["sha256"]
    # compact: fp16 and without the frozen embeddings
    assert (MODEL_DIR / WEIGHTS).stat().st_size < 50_000_000
    assert (MODEL_DIR / "MODEL_CARD.md").is_file()


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Who led the Norse raiders?", "Rollo"),
        ("In what country is Normandy located?", "France"),
        ("To which king did they swear fealty?", "Charles III"),
    ],
)
def test_reader_finds_the_span(reader: Reader, question: str, answer: str) -> None:
    (span,) = reader.read(question, [PASSAGE])
    assert span is not None
    assert answer in PASSAGE[span.start : span.end]
    assert span.margin > 0


def test_reader_prefers_the_passage_that_answers(reader: Reader) -> None:
    good, bad = reader.read("Who led the Norse raiders?", [PASSAGE, UNRELATED])
    assert good is not None and bad is not None
    assert good.margin > bad.margin
    assert bad.margin < 0  # nothing in the water passage answers it


def test_long_passages_are_read_in_windows(reader: Reader) -> None:
    long = " ".join([UNRELATED] * 12) + " " + PASSAGE
    (span,) = reader.read("Who led the Norse raiders?", [long])
    assert span is not None and span.window > 1
    assert "Rollo" in long[span.start : span.end]


def test_concurrent_reads_share_forward_passes_and_match_reading_alone(reader: Reader) -> None:
    from concurrent.futures import ThreadPoolExecutor

    long = " ".join([UNRELATED] * 6) + " " + PASSAGE
    asks = [
        ("Who led the Norse raiders?", [PASSAGE, UNRELATED]),
        ("In what country is Normandy located?", [long]),
        ("At what temperature does water boil?", [UNRELATED, PASSAGE]),
        ("To which king did they swear fealty?", [PASSAGE]),
    ] * 3
    alone = [reader.read(q, ps) for q, ps in asks]
    before = reader._batcher.batches
    with ThreadPoolExecutor(max_workers=len(asks)) as pool:
        together = list(pool.map(lambda a: reader.read(*a), asks))
    batches = reader._batcher.batches - before
    assert batches < len(asks)  # padded together into shared passes
    # bf16 keeps 8 bits of mantissa, and a padded batch sums in another order than a lone
    # request: a margin (two logits of about 8 each, minus two more) moves by up to about
    # 0.1 where fp32's moves by 1e-5; the spans themselves must not move
    tolerance = {"abs": 1e-3} if reader.precision == "fp32" else {"abs": 0.15, "rel": 0.01}
    for one, many in zip(alone, together, strict=True):
        for a, b in zip(one, many, strict=True):
            assert a is not None and b is not None
            assert (a.start, a.end, a.window) == (b.start, b.end, b.window)
            assert a.margin == pytest.approx(b.margin, **tolerance)


def test_corrupt_weights_fail_loudly(tmp_path: Path) -> None:
    broken = tmp_path / "reader"
    shutil.copytree(MODEL_DIR, broken)
    data = bytearray((broken / WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (broken / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(ReaderIntegrityError, match="sha256"):
        Reader(broken).read("Who?", [PASSAGE])


def test_missing_weights_fail_loudly(tmp_path: Path) -> None:
    with pytest.raises(ReaderIntegrityError, match="not found"):
        Reader(tmp_path).read("Who?", [PASSAGE])


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/training is not here")
def test_training_data_never_includes_the_dev_split() -> None:
    dev = json.loads((DATA.parent / "benchmarks" / "squad2" / "dev-split.json").read_text())
    dev_contexts = {p["context"] for a in dev["data"] for p in a["paragraphs"]}
    examples = load_examples(Config(max_articles=40))
    assert examples and not {e.context for e in examples} & dev_contexts
    kinds = {e.kind for e in examples}
    assert kinds == {"answerable", "unanswerable", "negative"}
    for e in examples:
        if e.answer_start >= 0:
            assert e.context[e.answer_start :].startswith(e.answer_text)
        else:
            assert e.kind != "answerable"


def test_swapped_entity_questions_name_what_the_paragraph_does_not() -> None:
    """A swap replaces an entity the paragraph mentions with one of the same kind it never
    mentions, taken from another article, and is labelled "no answer"."""
    pairs = [
        (
            "Who has been President of Syria since 2000?",
            "Bashar al-Assad has been President of Syria since 2000.",
            "Bashar al-Assad",
            "Syria",
        ),
        (
            "Who led the Quds Force of Iran?",
            "Iran's Quds Force, led by Qasem Soleimani, advised the Syrian army.",
            "Qasem Soleimani",
            "Syria",
        ),
        (
            "When did France join the European Union?",
            "France joined the Union in 1957.",
            "1957",
            "France",
        ),
        (
            "Who was the king of Denmark in 1550?",
            "Christian III ruled Denmark in 1550.",
            "Christian III",
            "Denmark",
        ),
    ]
    items = [(Example(q, ctx, ctx.index(a), a, "answerable"), title) for q, ctx, a, title in pairs]
    out = swapped(items, 10, random.Random(0))
    assert len(out) >= 3 and all(e.kind == "swap" and e.answer_start == -1 for e in out)
    for e in out:
        (q,) = [ex.question for ex, _ in items if ex.context == e.context]
        assert e.question != q
        # what replaced the entity is not in the paragraph
        a, b = q.split(), e.question.split()
        (inserted,) = [
            " ".join(b[j1:j2])
            for op, _, _, j1, j2 in difflib.SequenceMatcher(None, a, b).get_opcodes()
            if op != "equal"
        ]
        assert inserted.strip("?") and inserted.strip("?").lower() not in e.context.lower()


def test_in_paragraph_swaps_name_what_the_paragraph_says_elsewhere() -> None:
    """An in-paragraph swap replaces an entity of the answer's sentence with one of the same
    kind, asked about in the same article, that the paragraph mentions only in another
    sentence: "which Iranian airbase" of a paragraph whose base is Russian."""
    ctx = (
        "Russia and Iran are allies in Syria. Russia plans a permanent military base in "
        "Lattakia, on the coast. Iran sent advisers to Damascus."
    )
    title = "Russia and Iran"
    questions = [
        ("Where does Russia plan a permanent military base?", "Lattakia"),
        ("Where did Iran send advisers?", "Damascus"),
    ]
    items = [(Example(q, ctx, ctx.index(a), a, "answerable"), title) for q, a in questions]
    # another article's question: never a source for in-paragraph swaps
    bridge = "Turkey built a bridge."
    other = Example(
        "What did Turkey build?", bridge, bridge.index("a bridge"), "a bridge", "answerable"
    )
    items.append((other, "Turkey"))
    out = swapped(items, 10, random.Random(0), present=True)
    assert {e.question for e in out} == {
        "Where does Iran plan a permanent military base?",
        "Where did Russia send advisers?",
    }
    assert all(e.kind == "swap-present" and e.answer_start == -1 for e in out)


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/training is not here")
def test_training_smoke(tmp_path: Path) -> None:
    """A few hundred examples for two steps: the script, export and manifest keep working."""
    cfg = Config(
        out=str(tmp_path / "model"),
        work=str(tmp_path / "work"),
        log=str(tmp_path / "work" / "train.log"),
        answerable=200,
        unanswerable=60,
        negatives=60,
        swaps=40,
        swaps_present=20,
        max_articles=20,
        max_steps=2,
        batch_size=8,
        checkpoint_every=1,
    )
    summary = train(cfg)
    assert summary["steps"] == 2
    out = tmp_path / "model"
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["sha256"] == sha256_of(out / WEIGHTS)
    assert manifest["config"]["seed"] == cfg.seed
    events = [json.loads(x) for x in (tmp_path / "work" / "train.log").open()]
    assert events[0]["event"] == "data" and events[-1]["event"] == "done"
    assert 0 < events[0]["swap"] <= 40 and 0 < events[0]["swap-present"] <= 20
    # what it wrote loads and reads
    (span,) = Reader(out).read("Who led the Norse raiders?", [PASSAGE])
    assert span is not None and 0 <= span.start < span.end <= len(PASSAGE)
    # and resuming from the checkpoint continues rather than starting over
    again = train(dataclasses.replace(cfg, resume=True, max_steps=3))
    assert again["steps"] == 3
    # stage 2 starts from what stage 1 wrote and reads pairs stage 1 did not sample
    stage2 = dataclasses.replace(
        cfg,
        work=str(tmp_path / "work2"),
        log=str(tmp_path / "work2" / "train.log"),
        out=str(tmp_path / "model2"),
        init=str(out),
        skip_answerable=200,
        answerable=100,
        max_steps=1,
    )
    first = {(e.question, e.context) for e in load_examples(cfg) if e.kind == "answerable"}
    later = {(e.question, e.context) for e in load_examples(stage2) if e.kind == "answerable"}
    assert len(later) == 100 and not first & later
    assert train(stage2)["steps"] == 1
    events = [json.loads(x) for x in (tmp_path / "work2" / "train.log").open()]
    assert any(e["event"] == "init" and e["weights"] == str(out) for e in events)
    # a time budget (a run on a lent machine) stops early and still writes a model that loads
    budget = dataclasses.replace(
        cfg,
        work=str(tmp_path / "work4"),
        log=str(tmp_path / "work4" / "train.log"),
        out=str(tmp_path / "model4"),
        max_steps=50,
        max_seconds=1e-6,
    )
    assert train(budget)["steps"] == 0
    events = [json.loads(x) for x in (tmp_path / "work4" / "train.log").open()]
    assert any(e["event"] == "stopped" and e["reason"] == "max_seconds" for e in events)
    assert Reader(tmp_path / "model4").read("Who led the Norse raiders?", [PASSAGE])
    (tmp_path / "model" / WEIGHTS).write_bytes(b"not the weights")
    with pytest.raises(SystemExit, match="sha256"):
        train(dataclasses.replace(stage2, work=str(tmp_path / "work3")))


def test_batches_are_padded_to_a_multiple_of_the_pad_length() -> None:
    """Fewer distinct shapes: oneDNN compiles (and caches) a kernel per shape in bf16."""
    import torch

    from index.precision import PAD_MULTIPLE

    longest = PAD_MULTIPLE + 5
    a = (torch.ones(2, longest, dtype=torch.long),) * 3
    b = (torch.ones(1, 9, dtype=torch.long),) * 3
    ids, mask, _ = padded_batch([a, b])
    assert tuple(ids.shape) == (3, 2 * PAD_MULTIPLE)
    assert int(mask[2].sum()) == 9 and int(mask[0].sum()) == longest


def test_bf16_reads_as_fp32_does() -> None:
    """bf16 (the default where the CPU has it) finds the same spans as fp32, with margins
    within a fraction of a logit; bench/precision.py measures F1 on the whole dev split."""
    fp32, bf16 = Reader(precision="fp32"), Reader(precision="bf16")
    questions = ["Who led the Norse raiders?", "To which king did they swear fealty?", "Why?"]
    for q in questions:
        (a,), (b,) = fp32.read(q, [PASSAGE]), bf16.read(q, [PASSAGE])
        assert a is not None and b is not None
        assert (a.start, a.end) == (b.start, b.end), q
        assert abs(a.margin - b.margin) < 0.5, (q, a.margin, b.margin)


def test_int8_reads_as_fp32_does(tmp_path: Path) -> None:
    """int8 (the default on CPUs) reads where fp32 reads: overlapping spans, margins within
    1.5. Not the same spans: ONNX Runtime's int8 kernels differ by CPU, and on AVX-512 VNNI
    "Who led the Norse raiders?" gave "…under their leader Rollo" for "Rollo".
    bench/precision.py measures the whole dev split (HasAns F1 0.16 points lower than fp32 on
    AVX2, 0.58 on AVX-512 VNNI)."""
    fp32, q8 = Reader(precision="fp32"), Reader(precision="int8", cache_dir=tmp_path)
    questions = ["Who led the Norse raiders?", "To which king did they swear fealty?", "Why?"]
    for q in questions:
        passages = [PASSAGE, PASSAGE[:90]]  # two lengths: padding must not change a reading
        for a, b in zip(fp32.read(q, passages), q8.read(q, passages), strict=True):
            assert a is not None and b is not None
            assert a.start < b.end and b.start < a.end, (q, a, b)
            assert abs(a.margin - b.margin) < 1.5, (q, a.margin, b.margin)
