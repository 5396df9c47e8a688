"""Settings for the generative tests (the llama.cpp server fixture lives in tests/llama.py)."""

from __future__ import annotations

import pytest

from service.settings import Settings
from tests.llama import MODEL_ALIAS, LlamaServer

__all__ = ["MODEL_ALIAS", "LlamaServer"]


@pytest.fixture(scope="session")
def llm_settings(llama_server: LlamaServer) -> Settings:
    """Generative settings bounded for a 2048-token context and two shared CPU cores."""
    return Settings(
        mode="generative",
        llm_base_url=llama_server.base_url,
        llm_model=MODEL_ALIAS,
        llm_max_tokens=128,
        llm_context_chars=4000,
        llm_timeout_s=120,
        _env_file=None,  # type: ignore[call-arg]  # a developer's .env must not steer the tests
    )
