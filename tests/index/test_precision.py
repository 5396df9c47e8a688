"""Model precision: what ``auto`` picks, and that bf16 embeddings stay interchangeable with fp32."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_auto_is_bf16_exactly_where_the_cpu_computes_it() -> None:
    native = bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())
    assert precision.native_bf16("cpu") is native
    assert precision.resolve("auto") == ("bf16" if native else "fp32")
    assert precision.resolve("fp32") == "fp32"
    assert precision.resolve("bf16") == "bf16"  # asked for explicitly: honoured
    assert precision.resolve("auto", "mps") == "fp32"


def test_the_setting_is_validated_and_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROUNDQA_MODEL_PRECISION", "fp32")
    assert IndexSettings().precision == "fp32"
    monkeypatch.setenv("GROUNDQA_MODEL_PRECISION", "int4")
    with pytest.raises(ValidationError):
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


_GROWTH = """
import os, sys, torch
if sys.argv[1] != "default":
    os.environ.pop("ONEDNN_PRIMITIVE_CACHE_CAPACITY", None)
    os.environ.pop("LRU_CACHE_CAPACITY", None)
    from index.precision import bound_kernel_caches, cast
    bound_kernel_caches(32)  # a small bound, so that 300 shapes overflow it
    lin = cast(torch.nn.Linear(384, 1536), "bf16")
else:
    os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = "1024"
    os.environ["LRU_CACHE_CAPACITY"] = "1024"
    lin = torch.nn.Linear(384, 1536).to(torch.bfloat16)
def rss():
    return next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmRSS"))
with torch.inference_mode():
    lin(torch.randn(3, 384, dtype=torch.bfloat16))
    before = rss()
    for m in range(1, 301):  # 300 input shapes: oneDNN compiles a kernel for each
        lin(torch.randn(m, 384, dtype=torch.bfloat16))
print((rss() - before) / 1024)
"""


@pytest.mark.skipif(not precision.native_bf16("cpu"), reason="bf16 kernels need AVX512-BF16")
def test_bf16_kernel_cache_is_bounded() -> None:
    """The bound reaches oneDNN: measured here, 300 shapes kept 205 MB of kernels at its
    default capacity (1,024) and 20 MB at a capacity of 16. A server meets shapes without end,
    so this is what keeps its memory flat."""

    def growth(mode: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", _GROWTH, mode],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        return float(out.stdout.strip().splitlines()[-1])

    bounded, default = growth("ours"), growth("default")
    assert bounded < 0.5 * default, (bounded, default)


def test_kernel_cache_bound_keeps_a_users_value(monkeypatch: pytest.MonkeyPatch) -> None:
    # set, then removed: the fixture restores the absence after the test
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "0")
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY")
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "4096")
    precision.bound_kernel_caches()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(precision.KERNEL_CACHE)
    assert os.environ["LRU_CACHE_CAPACITY"] == "4096"
