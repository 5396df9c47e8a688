"""Model precision: what ``auto`` picks, and that bf16 embeddings stay interchangeable with fp32."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from index import precision
from index.embedding import Embedder, model_path
from index.settings import DEFAULT_EMBEDDING_MODEL, IndexSettings


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_auto_is_int8_on_a_cpu_and_bf16_is_detected() -> None:
    native = bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())
    assert precision.native_bf16("cpu") is native
    assert precision.resolve("auto") == "int8"
    assert precision.resolve("fp32") == "fp32"
    assert precision.resolve("bf16") == "bf16"  # asked for explicitly: honoured
    assert precision.resolve("int8") == "int8"
    assert precision.resolve("auto", "mps") == "fp32"
    with pytest.raises(ValueError, match="int8 models run on the CPU"):
        precision.resolve("int8", "cuda")


def test_the_setting_is_validated_and_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROUNDQA_MODEL_PRECISION", "fp32")
    assert IndexSettings().precision == "fp32"
    monkeypatch.setenv("GROUNDQA_MODEL_PRECISION", "int4")
    with pytest.raises(ValidationError):
        IndexSettings()
    monkeypatch.setenv("GROUNDQA_MODEL_PRECISION", "int8")
    monkeypatch.setenv("GROUNDQA_EMBEDDING_DEVICE", "cuda")
    with pytest.raises(ValidationError, match="int8 models run on the CPU"):
        IndexSettings()


def test_bf16_vectors_match_fp32_and_share_the_collection() -> None:
    path = model_path(DEFAULT_EMBEDDING_MODEL)
    fp32 = Embedder(path, precision="fp32")
    bf16 = Embedder(path, precision="bf16")
    texts = [
        "The Normans gave their name to Normandy, a region in France.",
        "Iran brought Shiite fighters into Syria from Afghanistan and Pakistan.",
        "Water boils at a lower temperature at higher altitudes.",
    ]
    a, b = fp32.encode(texts), bf16.encode(texts)
    assert b.dtype == np.float32 and b.shape == a.shape
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-3)
    assert float(np.min(np.sum(a * b, axis=1))) > 0.995
    # an index built by one replica is searched by another on a CPU without bf16
    assert fp32.fingerprint == bf16.fingerprint
    # the sentence vectors pooled at ingest come from the same bf16 forward pass
    (_, sents_a), (_, sents_b) = fp32.encode_chunks(texts[:1]), bf16.encode_chunks(texts[:1])
    va, vb = sents_a[0].vectors, sents_b[0].vectors
    assert float(np.min(np.sum(va * vb, axis=1))) > 0.99


def test_an_index_of_another_precision_is_named_once(
    make_settings: Callable[..., IndexSettings], caplog: pytest.LogCaptureFixture
) -> None:
    """The index records the precision of its vectors; a process that embeds questions in
    another says so once, since answers then drift from the calibration."""
    from index.core import Index

    built = Index(make_settings(model_precision="fp32"))
    built.ingest()
    assert built._store.pointer().precisions == ("fp32",)
    with caplog.at_level(logging.WARNING, logger="index.core"):
        assert built.search("Who commands the Quds Force?", 3)
    assert not [r for r in caplog.records if "vectors" in r.getMessage()]
    other = Index(built.settings.model_copy(update={"model_precision": "int8"}))
    with caplog.at_level(logging.WARNING, logger="index.core"):
        assert other.search("Who commands the Quds Force?", 3)
        assert other.search("Which airbase did Russian warplanes use?", 3)
    said = [r.getMessage() for r in caplog.records if "vectors" in r.getMessage()]
    assert len(said) == 1 and "fp32 vectors" in said[0] and "in int8" in said[0]
