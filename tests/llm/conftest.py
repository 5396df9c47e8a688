"""Settings for the generative tests (the llama.cpp server fixture lives in tests/llama.py)."""

from __future__ import annotations

import pytest

from service.settings import Settings
from tests.llama import LLM_BOUNDS, MODEL_ALIAS, LlamaServer

__all__ = ["MODEL_ALIAS", "LlamaServer"]


@pytest.fixture(scope="session")
def llm_settings(llama_server: LlamaServer) -> Settings:
    """Generative settings against the llama.cpp server, within ``LLM_BOUNDS``."""
    return Settings(
        mode="generative",
        llm_base_url=llama_server.base_url,
        llm_model=MODEL_ALIAS,
        **LLM_BOUNDS,
        _env_file=None,  # type: ignore[call-arg]  # a developer's .env must not steer the tests
    )
