"""int8 models: the fp32 network exported to ONNX, its weights quantized to int8 per output
channel, and run by ONNX Runtime.

Measured with ``bench/precision.py`` on a 2-core AMD EPYC without native bf16 (AVX2,
``bench/results/precision-avx2.json``), against PyTorch fp32 in the same run:

- reader: five paragraphs read in 97.8 ms against 204.3 (median), SQuAD 2.0 HasAns F1 65.58
  against 65.74, AUC answerable-versus-not 0.678 against 0.683;
- embedder: 9,418 tokens/s against 4,551, dense recall@5 0.8780 against 0.8786;
- support model: AUC 0.9270 against 0.9285.

On a 2-core AMD EPYC with AVX-512 VNNI (``precision-avx512vnni.json``): reader 79.2 ms
against 260.7, F1 65.16 against 65.74; embedder 16,693 tokens/s against 4,194, recall@5
0.8763 against 0.8786; support AUC 0.9271 against 0.9285. The int8 kernels differ by CPU, so
the same window can give a slightly different span on each kind (never far: the tests check
that spans overlap).

In an earlier run (``precision-avx2-batched.json``, rows batched), PyTorch's own dynamic int8
lost 2.2 F1 points (63.53), and ONNX Runtime in fp32 read only 1% faster than PyTorch.

The graph is exported from the loaded network, whose weights the caller has checked, then
quantized; both steps take about 2 s a model, so the result is cached on disk under a key of
the weights' identity and the library versions, with its own sha256 checked when read back.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from index.errors import ModelUnavailable

log = logging.getLogger(__name__)

# ONNX opset of the export: 17 has LayerNormalization, which ONNX Runtime fuses further.
OPSET = 17
# Raised whenever the export or the quantization changes, so that old cached graphs go unused.
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/groundqa/models``, else ``~/.cache/groundqa/models``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "groundqa" / "models"


class OnnxModule:
    """The forward pass of the network ``network()`` returns (eval mode, fp32; called only when
    its graph is not cached) run by ONNX Runtime, int8 unless ``quantize`` is false: torch
    tensors in, torch tensors out, so code written for the PyTorch module calls it unchanged.
    Safe to share between threads (ONNX Runtime sessions are)."""

    def __init__(
        self,
        network: Callable[[], Any],
        example: Sequence[Any],
        inputs: Sequence[str],
        outputs: Sequence[str],
        *,
        identity: str,
        cache_dir: Path | None = None,
        quantize: bool = True,
        side_by_side: bool = True,
    ) -> None:
        try:
            import onnxruntime as ort
            import torch
        except ImportError as exc:  # pragma: no cover - both are dependencies of groundqa
            raise ModelUnavailable(
                "int8 models need onnxruntime and onnx: pip install onnxruntime onnx"
            ) from exc
        self.inputs = tuple(inputs)
        self.single = len(outputs) == 1
        # Dynamic quantization scales each activation tensor by its own largest value, so in
        # a batch one row's logits depend on the other rows and on the padding: a reader
        # margin moved by up to 1.4 logits between reading a window alone and in a batch of
        # ten. int8 graphs therefore run one row at a time, each cut to its own length, which
        # makes a request's answer independent of what it was batched with, and was no
        # slower here (ten windows: 81 ms row by row against 136 ms batched, as no padding
        # is computed).
        self.rowwise = quantize
        key = hashlib.sha256(
            "|".join(
                [
                    identity,
                    ",".join(outputs),
                    f"torch {torch.__version__}",
                    f"onnxruntime {ort.__version__}",
                    f"opset {OPSET}",
                    f"format {FORMAT_VERSION}",
                    "int8" if quantize else "fp32",
                ]
            ).encode()
        ).hexdigest()[:24]
        graph = _cached(cache_dir, key)
        if graph is None:
            # built only here: on a cache hit no fp32 network is made (about 1 s a model)
            graph = export(network(), example, inputs, outputs)
            if quantize:
                graph = quantized(graph)
            _store(cache_dir, key, graph)
        self.threads = max(1, torch.get_num_threads())
        # Rows of one batch run side by side, one core each, on a single-threaded session
        # (ONNX Runtime sessions take concurrent runs): one row of 192 tokens keeps two
        # threads only partly busy, and ten reader rows took 208 ms side by side against
        # 238 ms one after another on both threads (2 cores). A lone row runs on one thread
        # too: a second, multi-threaded session for it held 45 MB more a model.
        self.side_by_side = side_by_side and self.rowwise and self.threads > 1
        self.session = _session(ort, graph, 1 if self.side_by_side else self.threads)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # which outputs have a token axis, to pad back to the batch's width (row by row)
        self._per_token = [
            len(o.shape) > 1 and o.shape[1] == "tokens" for o in self.session.get_outputs()
        ]

    def __call__(self, *tensors: Any) -> Any:
        import torch

        arrays = [t.numpy() for t in tensors]
        if self.rowwise:
            outs = self._by_row(arrays)
        else:
            outs = self.session.run(None, dict(zip(self.inputs, arrays, strict=True)))
        out = [torch.from_numpy(o) for o in outs]
        return out[0] if self.single else tuple(out)

    def _by_row(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """The batch's outputs computed one row at a time, each row without its padding
        (rows are right-padded: the attention mask's sum is the row's length)."""
        mask = arrays[self.inputs.index("attention_mask")]
        rows, width = mask.shape
        lengths = [max(int(n), 1) for n in mask.sum(axis=1).tolist()]

        def run(i: int) -> list[np.ndarray]:
            n = lengths[i]
            feed = {name: a[i : i + 1, :n] for name, a in zip(self.inputs, arrays, strict=True)}
            out = []
            for k, o in enumerate(self.session.run(None, feed)):
                if self._per_token[k] and n < width:  # padding positions read as zeros
                    pad = [(0, 0)] * o.ndim
                    pad[1] = (0, width - n)
                    o = np.pad(o, pad)
                out.append(o)
            return out

        if rows > 1 and self.side_by_side:
            # longest first, so that no core is left with a long row at the end
            order = sorted(range(rows), key=lambda i: -lengths[i])
            done = dict(zip(order, self._workers().map(run, order), strict=True))
            results = [done[i] for i in range(rows)]
        else:
            results = [run(i) for i in range(rows)]
        if not rows:
            return [np.zeros((0,)) for _ in self._per_token]
        return [np.concatenate([r[k] for r in results]) for k in range(len(self._per_token))]

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="onnx-row")
        return self._pool


def _session(ort: Any, graph: bytes, threads: int) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # ONNX Runtime's pool threads spin after each run waiting for the next by default;
    # on two cores that spinning would take the core the tokenizer, the other model and
    # the next request need (no difference to a lone request: 83.0 against 82.0 ms).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def export(
    module: Any, example: Sequence[Any], inputs: Sequence[str], outputs: Sequence[str]
) -> bytes:
    """``module`` (eval mode, fp32) as a serialised ONNX graph. Every input is (rows, tokens),
    every output's first axes are (rows) or (rows, tokens), and those axes stay free."""
    import torch

    try:
        import onnx  # noqa: F401  (the exporter needs it; fail here with what to install)
    except ImportError as exc:
        raise ModelUnavailable(
            "exporting to ONNX needs the onnx package: pip install onnx"
        ) from exc
    encoder = getattr(module, "encoder", None)
    if encoder is not None and hasattr(encoder, "set_attn_implementation"):
        # The eager attention exports as the pattern ONNX Runtime fuses into one Attention
        # kernel; PyTorch's SDPA exports as loose MatMuls (about 10% slower in the probe).
        encoder.set_attn_implementation("eager")
    with torch.no_grad():
        shapes = module(*example)
    shapes = shapes if isinstance(shapes, tuple) else (shapes,)
    axes = {0: "rows", 1: "tokens"}
    dynamic = {name: dict(axes) for name in inputs} | {
        name: {d: axes[d] for d in range(min(t.dim(), 2))}
        for name, t in zip(outputs, shapes, strict=True)
    }
    buffer = io.BytesIO()
    # the TorchScript exporter traces (inference tensors cannot be traced) and warns about
    # each Python branch on a shape it meets: this graph's shapes are free by design
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            tuple(example),
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to any binary file
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def quantized(graph: bytes) -> bytes:
    """``graph`` with its MatMul weights int8, one scale per output channel; activations are
    quantized on the fly (dynamic quantization: no calibration data)."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="groundqa-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(graph)
        quiet = _DropAdvice()
        logging.getLogger().addFilter(quiet)
        try:
            quantize_dynamic(
                src,
                dst,
                weight_type=QuantType.QInt8,
                per_channel=True,
                # the exporter's shape inference leaves some MatMul outputs untyped; all are fp32
                extra_options={"DefaultTensorType": TensorProto.FLOAT},
            )
        finally:
            logging.getLogger().removeFilter(quiet)
        return dst.read_bytes()


class _DropAdvice(logging.Filter):
    """Drops ONNX Runtime's advice, logged on the root logger at every quantization, to run
    shape pre-processing first (it targets static quantization of vision models)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def _cached(cache_dir: Path | None, key: str) -> bytes | None:
    if cache_dir is None:
        return None
    path = cache_dir / f"{key}.onnx"
    try:
        graph = path.read_bytes()
        expected = path.with_suffix(".sha256").read_text(encoding="ascii").strip()
    except OSError:
        return None
    if hashlib.sha256(graph).hexdigest() != expected:
        log.warning("cached model %s is corrupt; exporting it again", path)
        return None
    return graph


def _store(cache_dir: Path | None, key: str, graph: bytes) -> None:
    if cache_dir is None:
        return
    path = cache_dir / f"{key}.onnx"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # written under temporary names and renamed, so a concurrent reader (another replica
        # or worker starting) sees the old state or the whole file, never a torn one
        for target, data in (
            (path, graph),
            (path.with_suffix(".sha256"), hashlib.sha256(graph).hexdigest().encode()),
        ):
            fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
    except OSError as exc:  # a read-only or full disk costs the next start 2 s, nothing more
        log.warning("cannot cache model in %s: %s", cache_dir, exc)


def onnx_sentence_transformer(
    model: Any,
    *,
    identity: str,
    cache_dir: Path | None = None,
    quantize: bool = True,
    side_by_side: bool = True,
) -> Any:
    """``model`` (a sentence-transformers model whose first module wraps a transformers
    encoder) with that encoder run by ONNX Runtime (int8 unless ``quantize`` is false);
    pooling and normalisation stay sentence-transformers' own. Converted in place."""
    import torch

    first = model[0]
    encoder = first.model
    example = first.tokenizer(
        ["a sentence.", "another sentence, longer."], return_tensors="pt", padding=True
    )
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in example]

    class Hidden(torch.nn.Module):
        """The encoder returning its last hidden state alone (what the export traces)."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.encoder(**dict(zip(names, inputs, strict=True))).last_hidden_state

    run = OnnxModule(
        lambda: Hidden().eval(),
        [example[n] for n in names],
        names,
        ("last_hidden_state",),
        identity=identity,
        cache_dir=cache_dir,
        quantize=quantize,
        side_by_side=side_by_side,
    )
    config = encoder.config  # not the encoder itself: its fp32 weights are no longer needed

    class OnnxEncoder(torch.nn.Module):
        """Stands in for the transformers encoder inside sentence-transformers."""

        def __init__(self) -> None:
            super().__init__()
            self.config = config
            self.run = run
            # sentence-transformers reads the device off a parameter or buffer
            self.register_buffer("anchor", torch.zeros(1), persistent=False)

        def forward(self, **features: Any) -> dict[str, torch.Tensor]:
            return {"last_hidden_state": self.run(*(features[n] for n in names))}

    first.model = OnnxEncoder()
    return model
