"""The support model: does a passage span support a claim?

Our own cross-encoder (``service/models/support/``, card in ``MODEL_CARD.md``): the packaged
all-MiniLM-L6-v2 encoder fine-tuned on NLI pairs and SQuAD-derived pairs (``make
train-support``), with one logit read from ``[CLS]``. It reads the span and the claim
together, so a swapped name, a changed number, the question echoed back or an empty fragment
score low even where their words overlap the span.

Two callers: the verifier scores a generated sentence against the spans of the passage it
cites, and the abstention model scores "question + short answer" against the sentence that
holds the answer. Weights ship fp16 without the frozen word embeddings; their sha256 is
checked at load.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from index.errors import ModelUnavailable
from index.precision import Precision
from service.batching import MicroBatcher
from service.reader import load_checked, padded_batch
from service.reader import trainable_state as trainable_state

MODEL_DIR = Path(__file__).with_name("models") / "support"
WEIGHTS = "support.safetensors"
MANIFEST = "support.json"
MAX_LENGTH = 160  # tokens per pair: a sentence or two and a claim; longer premises are cut

Pairs = tuple[Any, Any, Any]  # input ids, attention mask, token types (torch, rows x tokens)


class SupportIntegrityError(ModelUnavailable):
    """The support model's weights are missing or are not the ones its manifest names."""


def build_network(base: Path) -> Any:
    """The support network (encoder plus one logit on [CLS]), initialised from MiniLM."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    class SupportNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(base), add_pooling_layer=False)
            self.head = torch.nn.Linear(self.encoder.config.hidden_size, 1)

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            h = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            return self.head(h[:, 0].float()).squeeze(-1)  # fp32 head after a bf16 encoder

    return SupportNet()


class Support:
    """Scores (span, claim) pairs. Loads on first use; safe to share between threads."""

    batch_pairs = 64
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
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._tokenize_lock = threading.Lock()  # see Reader: the tokenizer's settings are shared
        self._batch: MicroBatcher[Pairs, np.ndarray] | None = None

    def _load(self) -> None:
        self._net, self._tokenizer = load_checked(
            self.model_dir,
            WEIGHTS,
            MANIFEST,
            "support",
            SupportIntegrityError,
            build_network,
            self._base,
            self.precision,
            self.cache_dir,
            ("supported",),
        )

    def _ensure(self) -> None:
        if self._net is None:
            with self._lock:
                if self._net is None:
                    self._load()

    def warmup(self) -> None:
        self.score([("The model loads here.", "The model loads.")])

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """P(supported) for each (premise, claim) pair."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        self._ensure()
        with self._tokenize_lock:
            enc = self._tokenizer(
                [p for p, _ in pairs],
                [c for _, c in pairs],
                truncation="longest_first",
                max_length=MAX_LENGTH,
                padding="longest",
                return_tensors="pt",
            )
        logits = self._batcher.submit(
            (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
        )
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)

    @property
    def _batcher(self) -> MicroBatcher[Pairs, np.ndarray]:
        if self._batch is None:
            with self._lock:
                if self._batch is None:
                    self._batch = MicroBatcher(
                        self._forward,
                        max_items=self.batch_pairs,
                        wait_ms=self.batch_wait_ms,
                        name="support",
                        size=lambda p: int(p[0].shape[0]),
                    )
        return self._batch

    def _forward(self, requests: list[Pairs]) -> list[np.ndarray]:
        import torch

        ids, mask, types = padded_batch(requests)
        with torch.inference_mode():
            logits = self._net(ids, mask, types).float().numpy()
        out, row = [], 0
        for r in requests:
            n = int(r[0].shape[0])
            out.append(logits[row : row + n])
            row += n
        return out


@lru_cache(maxsize=4)
def shared_support(
    model_dir: Path = MODEL_DIR, precision: Precision = "fp32", cache_dir: Path | None = None
) -> Support:
    """One support model per model directory and precision per process (see
    ``shared_reader``)."""
    return Support(model_dir, precision=precision, cache_dir=cache_dir)


# What the calibrated abstention model reads from the support model (see ``answer_features``).
FEATURES: tuple[str, ...] = ("support_answer",)


def answer_features(
    scorer: Support, question: str, answer: str | None, sentence: str
) -> dict[str, float]:
    """P(the sentence holding the reader's span supports "question answer"): low when the
    question changed a word of the sentence (a swapped name, a negation, an antonym), which
    the reader's span-versus-no-answer scores alone miss."""
    if not answer or not sentence:
        return {"support_answer": 0.0}
    p = float(scorer.score([(sentence, f"{question} {answer}")])[0])
    return {"support_answer": p}
