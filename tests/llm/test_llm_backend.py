"""GenerativeDrafter, LLMCondenser and llm_health against a real llama.cpp server, and dead ones."""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from index.errors import ModelUnavailable
from service.llm import (
    GenerativeDrafter,
    LLMCondenser,
    clean_condensed,
    format_passages,
    llm_health,
)
from service.result import ABSTAIN_ANSWER, Passage, Turn
from service.settings import Settings
from tests.conftest import free_port
from tests.llama import FOLLOW_UP_HISTORY, corpus_paragraphs

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


def corpus_passages(limit: int = 4) -> list[Passage]:
    """Paragraphs of the first default article, with their real offsets in the file."""
    return corpus_paragraphs(sorted(CORPUS.glob("*.txt"))[0])[:limit]


def offline_settings(base_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"mode": "generative", "llm_base_url": base_url, "_env_file": None}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


# --- no server needed ---------------------------------------------------------------------------


def test_passages_are_numbered_in_order_and_the_tail_is_dropped_to_fit() -> None:
    passages = corpus_passages()
    ctx = format_passages(passages, budget_chars=10_000)
    assert [int(n) for n in re.findall(r"^\[(\d+)\] ", ctx, re.M)] == list(
        range(1, len(passages) + 1)
    )
    assert f"({passages[0].title})" in ctx
    small = format_passages(passages, budget_chars=len(passages[0].text) + 100)
    # Only the tail goes: [1] still means passages[0].
    assert re.findall(r"^\[(\d+)\] ", small, re.M) == ["1"]
    assert small.startswith(f"[1] ({passages[0].title}) {passages[0].text[:50]}")


def test_no_passages_means_abstain_without_calling_the_model() -> None:
    settings = offline_settings(f"http://127.0.0.1:{free_port()}/v1")
    assert list(GenerativeDrafter(settings).draft("anything?", [])) == [ABSTAIN_ANSWER]


def test_condense_without_history_returns_the_question_untouched() -> None:
    settings = offline_settings(f"http://127.0.0.1:{free_port()}/v1")
    assert LLMCondenser(settings).condense("And why?", []) == "And why?"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Standalone question: What did Russia want in Syria?", "What did Russia want in Syria?"),
        (
            '"When was Pride and Prejudice published?"\nOutput: 1813',
            "When was Pride and Prejudice published?",
        ),
        ("Russia wanted to protect its interests.", ""),  # an answer, not a question
        ("", ""),
    ],
)
def test_clean_condensed_keeps_only_a_question(raw: str, expected: str) -> None:
    assert clean_condensed(raw) == expected


def test_endpoint_down_raises_model_unavailable() -> None:
    # A port nobody listens on: connection refused, for drafting, condensing and health alike.
    settings = offline_settings(f"http://127.0.0.1:{free_port()}/v1", llm_timeout_s=5)
    with pytest.raises(ModelUnavailable, match="cannot be reached"):
        list(GenerativeDrafter(settings).draft("What happened?", corpus_passages(1)))
    history = [Turn(role="user", content="Who?"), Turn(role="assistant", content="Them [1].")]
    with pytest.raises(ModelUnavailable, match="cannot be reached"):
        LLMCondenser(settings).condense("And then?", history)
    with pytest.raises(ModelUnavailable, match="cannot be reached"):
        llm_health(settings)


def test_no_endpoint_configured_raises_model_unavailable() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ModelUnavailable, match="GROUNDQA_LLM_BASE_URL"):
        llm_health(settings)
    with pytest.raises(ModelUnavailable, match="GROUNDQA_LLM_BASE_URL"):
        list(GenerativeDrafter(settings).draft("q?", corpus_passages(1)))


def test_endpoint_that_never_answers_times_out_as_model_unavailable() -> None:
    # A socket that accepts connections (kernel backlog) but never replies: a hung server.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        settings = offline_settings(f"http://127.0.0.1:{port}/v1", llm_timeout_s=0.5)
        with pytest.raises(ModelUnavailable, match="did not answer within"):
            list(GenerativeDrafter(settings).draft("What happened?", corpus_passages(1)))


class _Fake5xxHandler(http.server.BaseHTTPRequestHandler):
    """FAKE endpoint: answers every request with 503, like an overloaded or crashing server."""

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"error": {"message": "model is loading", "type": "server_error"}}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _reply

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_5xx_endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Fake5xxHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_endpoint_5xx_raises_model_unavailable(fake_5xx_endpoint: str) -> None:
    settings = offline_settings(fake_5xx_endpoint)
    with pytest.raises(ModelUnavailable, match="HTTP 503"):
        list(GenerativeDrafter(settings).draft("What happened?", corpus_passages(1)))
    with pytest.raises(ModelUnavailable, match="HTTP 503"):
        llm_health(settings)


@pytest.fixture
def fake_dropping_endpoint() -> Iterator[str]:
    """FAKE endpoint: starts a streamed chat completion, then closes the connection midway."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                delta = {"role": "assistant", "content": "A first sentence. "}
                chunk = {
                    "id": "x",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "m",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
                event = f"data: {json.dumps(chunk)}\n\n".encode()
                conn.sendall(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                # No terminating chunk: the body ends mid-stream.

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join(timeout=5)
        srv.close()


def test_a_stream_cut_midway_raises_model_unavailable(fake_dropping_endpoint: str) -> None:
    settings = offline_settings(fake_dropping_endpoint, llm_timeout_s=5)
    got: list[str] = []
    with pytest.raises(ModelUnavailable, match="broke off mid-answer"):
        got.extend(GenerativeDrafter(settings).draft("What happened?", corpus_passages(1)))
    assert got == ["A first sentence. "]


class _FakeAnsweringHandler(http.server.BaseHTTPRequestHandler):
    """FAKE endpoint: every chat completion is an answer, never a rewritten question."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        message = {"role": "assistant", "content": "Russia wanted a stable government."}
        body = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_condense_falls_back_to_the_heuristic_when_the_model_answers_instead() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeAnsweringHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = offline_settings(f"http://127.0.0.1:{server.server_address[1]}/v1")
        history = [
            Turn(role="user", content="Why did Iran object to the Hamadan Airbase deal?"),
            Turn(role="assistant", content="Its constitution bans foreign bases [1]."),
        ]
        standalone = LLMCondenser(settings).condense("And what did Russia want?", history)
    finally:
        server.shutdown()
        server.server_close()
    print(f"\n[condense fallback] {standalone!r}")
    assert "stable government" not in standalone  # the model's answer never becomes the query
    assert standalone != "And what did Russia want?"
    assert "Hamadan" in standalone or "Iran" in standalone


# --- the real model -----------------------------------------------------------------------------


@pytest.mark.llm
def test_health_passes_on_the_live_server(llm_settings: Settings) -> None:
    llm_health(llm_settings)


@pytest.mark.llm
def test_drafter_streams_several_deltas_from_the_real_model(llm_settings: Settings) -> None:
    drafter = GenerativeDrafter(llm_settings)
    started = time.monotonic()
    deltas = list(drafter.draft("How do Russia and Iran differ on Syria?", corpus_passages()))
    elapsed = time.monotonic() - started
    text = "".join(deltas)
    print(f"\n[draft] {len(deltas)} deltas in {elapsed:.2f}s: {deltas!r}")
    assert len(deltas) > 1, "the answer arrived in one piece: not streamed"
    assert re.search(r"[A-Za-z]{3}", text)
    # Deltas are whole sentences: every one but the last ends where a sentence ends.
    for d in deltas[:-1]:
        assert re.search(r"(?:[.!?][\"'”’)]*|\])\s+$|\n$", d), d


@pytest.mark.llm
def test_condenser_makes_the_follow_up_standalone(llm_settings: Settings) -> None:
    history = FOLLOW_UP_HISTORY
    follow_up = "And what did Russia want?"
    standalone = LLMCondenser(llm_settings).condense(follow_up, history)
    print(f"\n[condense] {follow_up!r} -> {standalone!r}")
    assert standalone != follow_up
    assert standalone.endswith("?")
    # The rewrite must carry the topic that only the history names.
    assert re.search(r"\b(Syria|Syrian|Iran)\b", standalone, re.IGNORECASE)


@pytest.mark.llm
def test_the_token_cap_reaches_the_server_and_the_cut_sentence_is_dropped(
    llm_settings: Settings,
) -> None:
    # ChatOpenAI's `max_completion_tokens` is ignored by llama.cpp: the cap must arrive as
    # `max_tokens`, or a small model rambles until the context window is full.
    capped = llm_settings.model_copy(update={"llm_max_tokens": 40})
    question = "Describe in great detail everything the sources say, paragraph by paragraph."
    text = "".join(GenerativeDrafter(capped).draft(question, corpus_passages()))
    print(f"\n[cap 40] {text!r}")
    assert len(text) < 40 * 8, "far more than 40 tokens came back: the cap was ignored"
    # The sentence the cap cut short never reaches the verifier.
    assert not text.strip() or re.search(r"(?:[.!?][\"'”’)]*|\])$", text.strip()), text
