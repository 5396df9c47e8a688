"""Generative mode through the API against a real OpenAI-compatible server (llama.cpp, SmolLM2)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from service.app import create_app
from service.qa import QA
from service.result import Answer
from service.settings import Settings
from tests.llama import LLM_BOUNDS, MODEL_ALIAS, LlamaServer
from tests.service.conftest import QUESTION, LiveServer, service_settings
from tests.service.test_api import sse_events

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def generative(svc_settings: Settings, qa: QA, llama_server: LlamaServer) -> Iterator[LiveServer]:
    settings = service_settings(
        svc_settings.corpus_dir,
        svc_settings.data_dir,
        mode="generative",
        llm_base_url=llama_server.base_url,
        llm_model=MODEL_ALIAS,
        **LLM_BOUNDS,
        ui=False,
    )
    with LiveServer(create_app(settings, QA(settings, index=qa.index), warmup=False)) as server:
        yield server


def test_generative_stream_ends_with_the_verified_answer(
    generative: LiveServer, svc_settings: Settings
) -> None:
    with (
        httpx.Client(base_url=generative.url, timeout=300) as c,
        c.stream("POST", "/v1/ask/stream", json={"question": QUESTION}) as r,
    ):
        assert r.status_code == 200
        events = sse_events(r)
    assert events[-1][0] == "final" and all(e == "delta" for e, _ in events[:-1])
    final = Answer.model_validate_json(events[-1][1])
    assert final.mode == "generative"
    assert final.abstained or final.citations
    for cite in final.citations:
        text = (svc_settings.corpus_dir / cite.source).read_text(encoding="utf-8")
        assert text[cite.start : cite.end] == cite.quote
    assert "".join(json.loads(d)["delta"] for e, d in events if e == "delta")


def test_generative_chat_stream_carries_the_verified_text_and_sources(
    generative: LiveServer,
) -> None:
    sdk = openai.OpenAI(base_url=f"{generative.url}/v1", api_key="x", max_retries=0, timeout=300)
    chunks = list(
        sdk.chat.completions.create(
            model="groundqa", stream=True, messages=[{"role": "user", "content": QUESTION}]
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    citations = (chunks[-1].model_extra or {})["citations"]
    abstained = (chunks[-1].model_extra or {})["abstained"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    if citations:
        assert "\n\nSources:\n[1] " in text
        assert all(c["quote"] in text for c in citations)
    else:
        assert abstained
