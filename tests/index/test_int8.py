"""int8 models (index.int8): exported, quantized, cached, and close to fp32."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from index import int8
from index.embedding import Embedder, model_path
from index.settings import DEFAULT_EMBEDDING_MODEL

TEXTS = [
    "The Normans gave their name to Normandy, a region in France.",
    "Iran brought Shiite fighters into Syria from Afghanistan and Pakistan, a longer text.",
    "Water boils.",
]


class Tiny(torch.nn.Module):
    """A network with the reader's call signature, small enough to export in a moment."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(50, 16)
        self.out = torch.nn.Linear(16, 2)

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.out(self.embed(ids) * mask.unsqueeze(-1))
        return h[..., 0] + types, h[:, 0, 1]


def _tiny(cache: Path | None, built: list[Tiny] | None = None) -> int8.OnnxModule:
    """Tiny run by ONNX Runtime; each network built is appended to ``built``."""
    example = [torch.ones(2, 5, dtype=torch.long)] * 3
    names = ("input_ids", "attention_mask", "token_type_ids")

    def network() -> Tiny:
        net = Tiny().eval()
        if built is not None:
            built.append(net)
        return net

    return int8.OnnxModule(
        network, example, names, ("tokens", "rows"), identity="tiny:1", cache_dir=cache
    )


def test_the_export_keeps_rows_and_tokens_free() -> None:
    run = _tiny(None)
    ids = torch.randint(0, 50, (3, 7))
    tokens, rows = run(ids, torch.ones_like(ids), torch.zeros_like(ids))
    assert tuple(tokens.shape) == (3, 7) and tuple(rows.shape) == (3,)
    with torch.no_grad():
        want_tokens, _ = Tiny().eval()(ids, torch.ones_like(ids), torch.zeros_like(ids))
    assert np.allclose(tokens.numpy(), want_tokens.numpy(), atol=0.05)  # int8 weights


def test_rows_side_by_side_match_each_row_read_alone() -> None:
    """A batch's rows run in parallel on the single-threaded session, longest first; each
    row's outputs must be those of that row run alone, in the batch's order, with its
    padding positions zero."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run = _tiny(None)
    finally:
        torch.set_num_threads(threads)
    assert run.side_by_side  # two threads: the side-by-side path is taken
    ids = torch.randint(1, 50, (5, 9))
    mask = torch.zeros_like(ids)
    lengths = [9, 3, 7, 1, 5]
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    types = torch.zeros_like(ids)
    tokens, rows = run(ids, mask, types)
    assert tuple(tokens.shape) == (5, 9) and tuple(rows.shape) == (5,)
    for i, n in enumerate(lengths):
        alone_tokens, alone_rows = run(
            ids[i : i + 1, :n], mask[i : i + 1, :n], types[i : i + 1, :n]
        )
        assert np.array_equal(tokens[i, :n].numpy(), alone_tokens[0].numpy())
        assert float(rows[i]) == float(alone_rows[0])
        assert not tokens[i, n:].any()


def test_an_export_is_cached_checked_and_rebuilt_when_corrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    built: list[Tiny] = []
    _tiny(tmp_path, built)
    assert len(built) == 1
    (graph,) = tmp_path.glob("*.onnx")
    assert graph.with_suffix(".sha256").is_file()

    def no_export(*_: object, **__: object) -> bytes:
        raise AssertionError("exported again although the cache holds the graph")

    monkeypatch.setattr(int8, "export", no_export)
    _tiny(tmp_path, built)  # from the cache, without building the fp32 network
    assert len(built) == 1
    graph.write_bytes(graph.read_bytes()[:-10])  # torn or tampered
    with pytest.raises(AssertionError, match="exported again"), caplog.at_level(logging.WARNING):
        _tiny(tmp_path)
    assert "corrupt" in caplog.text


def test_an_unwritable_cache_costs_a_warning_not_the_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with caplog.at_level(logging.WARNING):
        run = _tiny(blocked / "models")
    ids = torch.ones(1, 3, dtype=torch.long)
    assert tuple(run(ids, ids, ids)[0].shape) == (1, 3)
    assert "cannot cache" in caplog.text


def test_int8_embeddings_stay_close_to_fp32_and_share_the_collection(tmp_path: Path) -> None:
    path = model_path(DEFAULT_EMBEDDING_MODEL)
    fp32 = Embedder(path, precision="fp32")
    q8 = Embedder(path, precision="int8", cache_dir=tmp_path)
    a, b = fp32.encode(TEXTS), q8.encode(TEXTS)
    assert b.dtype == np.float32 and b.shape == a.shape
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-3)
    # bench/precision.py: mean 0.993 over the dev split's paragraphs, recall@5 unchanged
    assert float(np.min(np.sum(a * b, axis=1))) > 0.97
    assert fp32.fingerprint == q8.fingerprint
    assert list(tmp_path.glob("*.onnx")), "the int8 export was not cached"
    # the token vectors pooled into sentence vectors at ingest come from the same pass
    (_, sa), (_, sb) = fp32.encode_chunks(TEXTS[:2]), q8.encode_chunks(TEXTS[:2])
    for x, y in zip(sa, sb, strict=True):
        assert x.spans == y.spans
        assert float(np.min(np.sum(x.vectors * y.vectors, axis=1))) > 0.95
