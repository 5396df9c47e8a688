"""Settings for answering and serving; extends the index settings (env prefix ``GROUNDQA_``)."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from index.settings import IndexSettings
from service.result import Mode


class Settings(IndexSettings):
    """Everything an entry point needs; build it there and pass it down."""

    mode: Mode = "extractive"
    # Any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp server, OpenAI).
    llm_base_url: str | None = None
    llm_model: str = "default"
    llm_api_key: SecretStr | None = None
    llm_temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_tokens: int = Field(default=400, ge=16, le=8192)
    # Passages beyond this many characters are left out of the prompt (fits small context windows).
    llm_context_chars: int = Field(default=12000, ge=500)
    # Answering: how many passages the answer may draw on, and the verifier's bar.
    retrieve_k: int = Field(default=20, ge=1, le=200)
    min_support: float = Field(default=0.5, ge=0.0, le=1.0)
    # How many of the retrieved passages the reader reads for an answer span.
    read_k: int = Field(default=5, ge=1, le=50)
    # Abstain when the calibrated probability of a correct answer is below this.
    abstain_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    verify: bool = True  # switching these off exists to prove the eval gate catches it
    abstain: bool = True

    # Service
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # NoDecode: the env value reaches _split_keys as text (key1,key2), not parsed as JSON first.
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # Collections a key may use, by key number in api_keys ("key1" is the first key): a key
    # not listed may use every collection. JSON, e.g. {"key2": ["hr-policies"]}; NoDecode so an
    # empty value (compose's unset default) means no limits rather than a JSON error.
    key_collections: Annotated[dict[str, list[str]], NoDecode] = Field(default_factory=dict)
    rate_limit_per_minute: int = Field(default=120, ge=0)  # per key (or client address); 0 = off
    max_question_chars: int = Field(default=2000, ge=10)
    max_history_turns: int = Field(default=20, ge=0)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_upload_files: int = Field(default=10, ge=1)
    ui: bool = True
    # Answers computed at once, and how many more may wait (first come, first served) before
    # a request is refused with 503 and Retry-After; see service/admission.py. Three on 2
    # cores: at 32 clients, 13.17 requests/s against 12.28 with two at 10k chunks and 11.05
    # against 10.32 at 1k (bench/results/scale-10k-admission-slots.json,
    # scale-1k-admission-slots-lean.json); four gained 1% more at 10k.
    max_concurrent_answers: int = Field(default=3, ge=1, le=64)
    max_queued_answers: int = Field(default=64, ge=0, le=10_000)
    queue_timeout_s: float = Field(default=30.0, gt=0)
    # Serving on a non-loopback address without API keys must be asked for explicitly.
    allow_anonymous: bool = False
    log_level: str = "INFO"

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, v: object) -> object:
        # GROUNDQA_API_KEYS=key1,key2 as well as a JSON list.
        if isinstance(v, str) and v.strip().startswith("["):
            return json.loads(v)
        if isinstance(v, str):
            return [] if not v.strip() else [k.strip() for k in v.split(",") if k.strip()]
        return v

    @field_validator("key_collections", mode="before")
    @classmethod
    def _parse_key_collections(cls, v: object) -> object:
        if isinstance(v, str):
            return json.loads(v) if v.strip() else {}
        return v

    @field_validator("api_keys")
    @classmethod
    def _strong_keys(cls, v: list[SecretStr]) -> list[SecretStr]:
        for key in v:
            if len(key.get_secret_value()) < 16:
                raise ValueError("every API key must be at least 16 characters")
        return v

    @model_validator(mode="after")
    def _known_key_names(self) -> Settings:
        known = {f"key{i + 1}" for i in range(len(self.api_keys))}
        unknown = sorted(set(self.key_collections) - known)
        if unknown:
            raise ValueError(
                f"key_collections names {', '.join(unknown)}, but only "
                f"{len(self.api_keys)} API key(s) are set (key1 is the first)"
            )
        return self

    @field_validator("llm_base_url")
    @classmethod
    def _llm_url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError("llm_base_url must start with http:// or https://")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _generative_needs_llm(self) -> Settings:
        if self.mode == "generative" and not self.llm_base_url:
            raise ValueError("mode 'generative' needs GROUNDQA_LLM_BASE_URL")
        return self

    @model_validator(mode="after")
    def _public_bind_needs_keys(self) -> Settings:
        # Refuse to expose an unauthenticated service beyond this machine.
        local = self.host in ("127.0.0.1", "localhost", "::1")
        if not local and not self.api_keys and not self.allow_anonymous:
            raise ValueError(
                f"binding to {self.host} without GROUNDQA_API_KEYS; set keys, or "
                "GROUNDQA_ALLOW_ANONYMOUS=1 to serve without authentication on purpose"
            )
        return self
