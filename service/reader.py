"""Step 4a: read the question against each retrieved passage and find the answer span, or none.

The reader is our own model (``service/models/reader/``, card in ``MODEL_CARD.md``): the
packaged all-MiniLM-L6-v2 encoder fine-tuned on SQuAD v1.1 plus SQuAD 2.0 unanswerable
questions and negatives from other paragraphs of the same article. It has two heads over the
encoder's token states: start/end logits of the answer span (the ``[CLS]`` token stands for
"no answer") and an answerability logit read from ``[CLS]``.

Only the encoder layers and the heads ship (fp16); the word embeddings were frozen during
training, so they are read from the packaged MiniLM, which also provides the tokenizer. The
weights' sha256 is checked at load, and a mismatch is an error, never a silent fallback.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.embedding import sha256_of
from index.errors import ModelUnavailable
from index.int8 import OnnxModule
from index.precision import PAD_MULTIPLE, Precision, cast
from service.batching import MicroBatcher

if TYPE_CHECKING:
    import torch

    from service.evidence import Evidence, Sentence

MODEL_DIR = Path(__file__).with_name("models") / "reader"
WEIGHTS = "reader.safetensors"
MANIFEST = "reader.json"

MAX_LENGTH = 256  # tokens per window: a default 800-character chunk plus its question
STRIDE = 96  # tokens shared by consecutive windows of a longer passage
MAX_ANSWER_TOKENS = 30
MAX_QUESTION_TOKENS = 64

# What the calibrated abstention model reads from a reading (see ``Reading.features``).
FEATURES: tuple[str, ...] = (
    "read_margin",
    "read_answerable",
    "read_null",
    "read_second",
    "read_positive",
    "read_rank",
    "read_words",
)
RANK_PRIOR = 2.0  # logits of span margin one retrieval rank (in log1p) is worth
NO_SPAN = -20.0  # the margin of a reading that found nothing to read

# One request's windows (input ids, attention mask, token types: torch tensors, rows x tokens)
# and the reader's logits for them (start, end, answerable: numpy).
Windows = tuple[Any, Any, Any]
Logits = tuple[np.ndarray, np.ndarray, np.ndarray]


class ReaderIntegrityError(ModelUnavailable):
    """The reader's weights are missing or are not the ones the manifest names."""


def build_network(base: Path) -> Any:
    """The reader's network (encoder plus the two heads), initialised from MiniLM at ``base``."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    # loading MiniLM's sentence-transformers checkpoint without its pooler is expected
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    class ReaderNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(base), add_pooling_layer=False)
            hidden = self.encoder.config.hidden_size
            self.span = torch.nn.Linear(hidden, 2)
            self.answerable = torch.nn.Linear(hidden, 1)

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            h = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state.float()  # the heads stay fp32 when the encoder runs in bf16
            logits = self.span(h)
            return logits[..., 0], logits[..., 1], self.answerable(h[:, 0]).squeeze(-1)

    return ReaderNet()


def trainable_state(net: Any) -> dict[str, Any]:
    """What ships: everything but the frozen embeddings, which MiniLM's package provides."""
    return {k: v for k, v in net.state_dict().items() if not k.startswith("encoder.embeddings.")}


@dataclass(frozen=True, slots=True)
class Span:
    """The reader's best answer in one passage (character offsets into the passage text)."""

    start: int
    end: int
    score: float  # start + end logit of the span
    null: float  # start + end logit of [CLS]: "no answer here"
    answerable: float  # answerability head's logit
    window: int  # how many windows the passage took

    @property
    def margin(self) -> float:
        """Span over no-answer: positive when the reader prefers an answer."""
        return self.score - self.null


class Reader:
    """Reads questions against passages. Loads on first use; safe to share between threads."""

    # Concurrent reads share forward passes of up to this many windows (see service.batching).
    batch_windows = 32
    batch_wait_ms = 2.0

    def __init__(
        self,
        model_dir: Path = MODEL_DIR,
        *,
        base: Path | None = None,
        precision: Precision = "fp32",
        cache_dir: Path | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.precision = precision
        self.cache_dir = cache_dir  # where an int8 export is kept (index.int8)
        self._base = base
        self._net: Any = None
        self._tokenizer: Any = None  # a transformers fast tokenizer
        self._lock = threading.Lock()
        # A fast tokenizer keeps its truncation and padding settings in the shared Rust
        # object and each call resets them, while batch encoding releases the GIL: calls
        # are serialised so that the question's length check (no truncation) cannot meet
        # a passage being cut into windows (cheap: tokenising takes about a millisecond).
        self._tokenize_lock = threading.Lock()
        self._batch: MicroBatcher[Windows, Logits] | None = None

    def _load(self) -> None:
        self._net, self._tokenizer = load_checked(
            self.model_dir,
            WEIGHTS,
            MANIFEST,
            "reader",
            ReaderIntegrityError,
            build_network,
            self._base,
            self.precision,
            self.cache_dir,
            ("start", "end", "answerable"),
        )

    def warmup(self) -> None:
        self.read("warm up", ["The reader loads here."])

    def _ensure(self) -> None:
        if self._net is None:
            with self._lock:
                if self._net is None:
                    self._load()

    def read(self, question: str, passages: Sequence[str]) -> list[Span | None]:
        """The best span in each passage (None for an empty passage)."""
        self._ensure()
        assert self._tokenizer is not None
        if not passages:
            return []
        q = self._question(question)
        with self._tokenize_lock:
            enc = self._tokenizer(
                [q] * len(passages),
                list(passages),
                truncation="only_second",
                max_length=MAX_LENGTH,
                stride=STRIDE,
                return_overflowing_tokens=True,
                return_offsets_mapping=True,
                padding="longest",
                return_tensors="pt",
            )
        owner = enc.pop("overflow_to_sample_mapping").tolist()
        offsets = enc.pop("offset_mapping").tolist()
        windows = (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
        start_np, end_np, ans_np = self._batcher.submit(windows)
        out: list[Span | None] = [None] * len(passages)
        counts = [0] * len(passages)
        for w, p in enumerate(owner):
            counts[p] += 1
            seq = enc.sequence_ids(w)
            ctx = np.array([s == 1 for s in seq])
            span = best_span(start_np[w], end_np[w], ctx, offsets[w])
            if span is None:
                continue
            a, b, score = (*_snap(passages[p], *span[:2]), span[2])
            null = float(start_np[w][0] + end_np[w][0])
            cand = Span(a, b, score, null, float(ans_np[w]), 0)
            prev = out[p]
            if prev is None or cand.margin > prev.margin:
                out[p] = cand
        return [
            None if s is None else dataclasses.replace(s, window=counts[i])
            for i, s in enumerate(out)
        ]

    @property
    def _batcher(self) -> MicroBatcher[Windows, Logits]:
        if self._batch is None:
            with self._lock:
                if self._batch is None:
                    self._batch = MicroBatcher(
                        self._forward,
                        max_items=self.batch_windows,
                        wait_ms=self.batch_wait_ms,
                        name="reader",
                        size=lambda w: int(w[0].shape[0]),
                    )
        return self._batch

    def _forward(self, requests: list[Windows]) -> list[Logits]:
        """One forward pass over the windows of several requests, padded to the longest."""
        import torch  # loaded by _ensure; only the name is bound here

        ids, mask, types = padded_batch(requests)
        with torch.inference_mode():
            start, end, answerable = self._net(ids, mask, types)
        start_np, end_np, ans_np = start.numpy(), end.numpy(), answerable.numpy()
        out: list[Logits] = []
        row = 0
        for r in requests:
            n, width = int(r[0].shape[0]), int(r[0].shape[1])
            out.append(
                (
                    start_np[row : row + n, :width],
                    end_np[row : row + n, :width],
                    ans_np[row : row + n],
                )
            )
            row += n
        return out

    def _question(self, question: str) -> str:
        assert self._tokenizer is not None
        with self._tokenize_lock:
            ids = self._tokenizer(question, add_special_tokens=False)["input_ids"]
        if len(ids) <= MAX_QUESTION_TOKENS:
            return question
        # an over-long question would leave no room for the passage: keep its end, where
        # the asking usually is
        return str(self._tokenizer.decode(ids[-MAX_QUESTION_TOKENS:]))


def load_checked(
    model_dir: Path,
    weights_name: str,
    manifest_name: str,
    name: str,
    error: type[ModelUnavailable],
    build: Any,
    base: Path | None = None,
    precision: Precision = "fp32",
    cache_dir: Path | None = None,
    outputs: Sequence[str] = ("logits",),
) -> tuple[Any, Any]:
    """The network ``build(base)`` with the fp16 weights of ``model_dir`` (their sha256 checked
    against the manifest's; any mismatch raises ``error``), in eval mode, and its tokenizer.
    Its encoder runs in ``precision``; the heads stay fp32. In int8 the network is exported
    (its ``outputs`` so named), quantized and run by ONNX Runtime, cached in ``cache_dir``."""
    try:
        import torch  # noqa: F401  (here, so a missing install gets the message below)
        from safetensors.torch import load_file
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise ModelUnavailable(
            f"the {name} model needs torch and transformers: pip install torch==2.13.0 transformers"
        ) from exc
    manifest_path = model_dir / manifest_name
    weights = model_dir / weights_name
    if not manifest_path.is_file() or not weights.is_file():
        raise error(
            f"{name} model not found in {model_dir}: expected {manifest_name} and {weights_name}"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    actual = sha256_of(weights)
    if actual != manifest.get("sha256"):
        raise error(
            f"{name} weights {weights} have sha256 {actual}, but {manifest_path} names "
            f"{manifest.get('sha256')}: the file is corrupt or was replaced; restore it "
            f"with `git checkout -- service/models/{name}`"
        )
    root = base or _minilm_path()

    def network() -> Any:
        net = build(root)
        state = {k: v.float() for k, v in load_file(str(weights)).items()}
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("encoder.embeddings.") for k in missing):
            raise error(
                f"{name} weights do not fit the network: missing {missing}, extra {unexpected}"
            )
        return net.eval()

    tokenizer = AutoTokenizer.from_pretrained(str(root))
    if precision != "int8":
        net = network()
        cast(net.encoder, precision)
        return net, tokenizer
    identity = f"{name}:{actual}"  # the checked sha256 of the shipped weights
    run = onnx_network(network, tokenizer, outputs, identity=identity, cache_dir=cache_dir)
    return run, tokenizer


def onnx_network(
    network: Callable[[], Any],
    tokenizer: Any,
    outputs: Sequence[str],
    *,
    identity: str,
    cache_dir: Path | None = None,
    quantize: bool = True,
    side_by_side: bool = True,
) -> OnnxModule:
    """The network ``network()`` builds (called with a question-passage pair's ids, mask and
    token types; built only when not cached) run by ONNX Runtime, int8 unless ``quantize``
    is false (see ``index.int8``)."""
    example = tokenizer(["a question?"] * 2, ["a passage."] * 2, return_tensors="pt")
    names = ("input_ids", "attention_mask", "token_type_ids")
    return OnnxModule(
        network,
        [example[n] for n in names],
        names,
        outputs,
        identity=identity,
        cache_dir=cache_dir,
        quantize=quantize,
        side_by_side=side_by_side,
    )


def padded_batch(requests: Sequence[Windows]) -> Windows:
    """The (ids, mask, token types) of several requests in one batch, right-padded with 0 to
    the longest, rounded up to a multiple of ``PAD_MULTIPLE`` (fewer shapes to compile)."""
    import torch

    longest = max(int(r[0].shape[1]) for r in requests)
    longest = -(-longest // PAD_MULTIPLE) * PAD_MULTIPLE

    def padded(t: Any) -> Any:
        return torch.nn.functional.pad(t, (0, longest - int(t.shape[1])))

    ids, mask, types = (torch.cat([padded(r[i]) for r in requests]) for i in range(3))
    return ids, mask, types


@lru_cache(maxsize=4)
def shared_reader(
    model_dir: Path = MODEL_DIR, precision: Precision = "fp32", cache_dir: Path | None = None
) -> Reader:
    """One reader per model directory and precision per process, as
    ``index.embedding.get_embedder`` does for the embedder: every ``QA`` of a process (the
    API's, the evals', the tests') shares its loaded weights instead of loading and hashing
    them again."""
    return Reader(model_dir, precision=precision, cache_dir=cache_dir)


def best_span(
    start: np.ndarray, end: np.ndarray, context: np.ndarray, offsets: Sequence[Sequence[int]]
) -> tuple[int, int, float] | None:
    """The highest-scoring (start <= end, at most MAX_ANSWER_TOKENS) span inside the context,
    as character offsets and its logit sum."""
    idx = np.flatnonzero(context)
    if idx.size == 0:
        return None
    s, e = start[idx], end[idx]
    # score[i, j] = s[i] + e[j] for i <= j < i + MAX_ANSWER_TOKENS
    n = idx.size
    scores = s[:, None] + e[None, :]
    i, j = np.indices((n, n))
    scores = np.where((j >= i) & (j - i < MAX_ANSWER_TOKENS), scores, -np.inf)
    flat = int(np.argmax(scores))
    a, b = divmod(flat, n)
    ta, tb = int(idx[a]), int(idx[b])
    return int(offsets[ta][0]), int(offsets[tb][1]), float(scores[a, b])


def _snap(text: str, a: int, b: int) -> tuple[int, int]:
    """Widen a span to whole words: a span ending inside "Rollo" at a word piece means Rollo."""
    while a > 0 and text[a - 1].isalnum():
        a -= 1
    while b < len(text) and text[b].isalnum():
        b += 1
    return a, b


def _minilm_path() -> Path:
    from index.embedding import model_path
    from index.settings import DEFAULT_EMBEDDING_MODEL

    return model_path(DEFAULT_EMBEDDING_MODEL)


@dataclass(slots=True)
class Found:
    """The best span of one passage, with the evidence sentences that hold it."""

    passage: int  # index into Evidence.passages
    span: Span
    text: str
    sentences: list[Sentence]


@dataclass(slots=True)
class Reading:
    """What the reader found for one question in the passages it read, best first."""

    question: str
    found: list[Found]

    def best(self) -> Found | None:
        return self.found[0] if self.found else None

    def features(self) -> dict[str, float]:
        """The reader's answer-versus-no-answer scores, for the calibrated model."""
        best = self.best()
        if best is None:
            return {**dict.fromkeys(FEATURES, 0.0), "read_margin": NO_SPAN, "read_second": NO_SPAN}
        others = [f.span.margin for f in self.found[1:]]
        return {
            "read_margin": best.span.margin,
            "read_answerable": best.span.answerable,
            "read_null": best.span.null,
            "read_second": max(others) if others else NO_SPAN,
            "read_positive": float(np.log1p(sum(f.span.margin > 0 for f in self.found))),
            "read_rank": float(np.log1p(best.passage)),
            "read_words": float(np.log1p(len(best.text.split()))),
        }


def read_evidence(reader: Reader, question: str, ev: Evidence, k: int) -> Reading:
    """Read ``question`` against the first ``k`` passages of ``ev``; the spans, best first."""
    passages = ev.passages[:k]
    spans = reader.read(question, [p.text for p in passages])
    found = []
    for i, (p, span) in enumerate(zip(passages, spans, strict=True)):
        if span is None:
            continue
        lo, hi = p.start + span.start, p.start + span.end
        holding = [s for s in ev.by_passage.get(i, []) if s.start < hi and s.end > lo]
        if not holding:  # a span in text the sentence splitter dropped (a bare title line)
            continue
        found.append(Found(i, span, p.text[span.start : span.end].strip(), holding))
    # The reader sees one passage at a time; retrieval saw them all. On the SQuAD dev split
    # (calibration data) a log-rank prior picked the passage holding the gold 3 points more
    # often than the margin alone (0.739 against 0.709 of 165 answerable questions).
    found.sort(key=lambda f: f.span.margin - RANK_PRIOR * np.log1p(f.passage), reverse=True)
    return Reading(question, found)


def onto(reading: Reading, ev: Evidence, pool: Evidence) -> Reading:
    """``reading``, made of ``ev``, with its passages and sentences renumbered as ``pool``'s,
    which holds every passage of ``ev`` (a compound question's part read on its own
    passages, quoted in the answer to the whole)."""
    at = {p.chunk_id: i for i, p in enumerate(pool.passages)}
    found = []
    for f in reading.found:
        i = at[ev.passages[f.passage].chunk_id]
        idx = {x.index for x in f.sentences}
        held = [x for x in pool.by_passage.get(i, []) if x.index in idx]
        found.append(Found(i, f.span, f.text, held))
    return Reading(reading.question, found)
