"""The HTTP API over real HTTP: uvicorn, QA, embedded Chroma, httpx and the OpenAI SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from service.app import create_app
from service.qa import QA
from service.result import Answer
from service.settings import Settings
from tests.service.conftest import QUESTION, LiveServer


def sse_events(response: httpx.Response) -> list[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream body."""
    events: list[tuple[str, str]] = []
    event, data = "message", []
    for line in response.iter_lines():
        if line == "":
            if data:
                events.append((event, "\n".join(data)))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        events.append((event, "\n".join(data)))
    return events


def assert_error(response: httpx.Response, status: int, type_: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error"}
    err = body["error"]
    assert set(err) == {"type", "message", "request_id"}
    assert err["request_id"] == response.headers["x-request-id"]
    if type_:
        assert err["type"] == type_
    return err


def test_ask_answers_with_exact_citations(client: httpx.Client, svc_settings: Settings) -> None:
    r = client.post("/v1/ask", json={"question": QUESTION})
    assert r.status_code == 200, r.text
    answer = Answer.model_validate(r.json())
    assert not answer.abstained
    assert "Wadi Barada" in answer.answer
    assert answer.citations and "[1]" in answer.answer
    for c in answer.citations:
        text = (svc_settings.corpus_dir / c.source).read_text(encoding="utf-8")
        assert text[c.start : c.end] == c.quote


def test_ask_abstains_on_unanswerable(client: httpx.Client) -> None:
    r = client.post(
        "/v1/ask", json={"question": "What is the boiling point of liquid nitrogen on Mars?"}
    )
    assert r.status_code == 200
    answer = Answer.model_validate(r.json())
    assert answer.abstained
    assert not answer.citations


def test_stream_sends_deltas_then_final_with_citations(client: httpx.Client) -> None:
    with client.stream("POST", "/v1/ask/stream", json={"question": QUESTION}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    kinds = [e for e, _ in events]
    assert kinds[-1] == "final" and kinds.count("final") == 1
    assert "delta" in kinds and set(kinds) <= {"delta", "final"}
    final = Answer.model_validate_json(events[-1][1])
    streamed = "".join(json.loads(d)["delta"] for e, d in events if e == "delta")
    assert final.citations and "Wadi Barada" in final.answer
    assert streamed == final.answer


def test_chat_completions_with_openai_sdk(live: LiveServer) -> None:
    sdk = openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused-without-keys", max_retries=0)
    assert [m.id for m in sdk.models.list()] == ["groundqa"]

    reply = sdk.chat.completions.create(
        model="groundqa", messages=[{"role": "user", "content": QUESTION}]
    )
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "stop"
    assert "Wadi Barada" in (message.content or "")
    assert "\n\nSources:\n[1] " in (message.content or "")
    citations = (message.model_extra or {})["citations"]
    assert citations and citations[0]["n"] == 1 and citations[0]["quote"] in (message.content or "")

    chunks = list(
        sdk.chat.completions.create(
            model="groundqa", stream=True, messages=[{"role": "user", "content": QUESTION}]
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Wadi Barada" in text and "Sources:\n[1] " in text
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop"
    assert (final.model_extra or {})["citations"] == (final.choices[0].delta.model_extra or {})[
        "citations"
    ]
    assert (final.model_extra or {})["citations"][0]["quote"] in text


def test_chat_history_is_used_for_follow_ups(live: LiveServer) -> None:
    sdk = openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=0)
    first = sdk.chat.completions.create(
        model="groundqa", messages=[{"role": "user", "content": QUESTION}]
    )
    follow = sdk.chat.completions.create(
        model="groundqa",
        messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": first.choices[0].message.content or ""},
            {"role": "user", "content": "Whose forces continued assaults there?"},
        ],
    )
    assert follow.choices[0].message.content


def test_chat_rejects_a_non_user_last_message(client: httpx.Client) -> None:
    r = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "assistant", "content": "hi"}]}
    )
    assert_error(r, 422, "validation_error")


def test_documents_upload_ask_delete_reindex(client: httpx.Client, svc_settings: Settings) -> None:
    before = client.get("/v1/documents").json()
    assert {d["source"] for d in before["documents"]} >= {
        p.name for p in Path("corpus").glob("*.txt")
    }
    assert before["total_chunks"] == sum(d["chunks"] for d in before["documents"])
    fact = (
        "The Quarnis lighthouse was rebuilt in 1911 by the engineer Odile Vantreux after a storm.\n"
    )
    r = client.post(
        "/v1/documents",
        files=[("files", ("quarnis.txt", f"Quarnis lighthouse\n\n{fact}".encode(), "text/plain"))],
    )
    assert r.status_code == 200, r.text
    assert r.json()["added"] == ["quarnis.txt"]
    assert (svc_settings.corpus_dir / "quarnis.txt").is_file()
    try:
        answer = Answer.model_validate(
            client.post("/v1/ask", json={"question": "Who rebuilt the Quarnis lighthouse?"}).json()
        )
        assert "Odile Vantreux" in answer.answer
        assert answer.citations[0].source == "quarnis.txt"

        # Same name again: replaces that file (a new version), nothing else changes.
        r = client.post(
            "/v1/documents",
            files=[
                ("files", ("quarnis.txt", f"Quarnis lighthouse\n\n{fact}Extra line.\n".encode()))
            ],
        )
        assert r.json()["updated"] == ["quarnis.txt"]
        docs = {d["source"]: d for d in client.get("/v1/documents").json()["documents"]}
        assert "quarnis.txt" in docs
    finally:
        doc_id = {d["source"]: d["id"] for d in client.get("/v1/documents").json()["documents"]}[
            "quarnis.txt"
        ]
        r = client.delete(f"/v1/documents/{doc_id}")
    assert r.status_code == 200 and r.json()["source"] == "quarnis.txt"
    assert not (svc_settings.corpus_dir / "quarnis.txt").exists()
    assert "quarnis.txt" not in {
        d["source"] for d in client.get("/v1/documents").json()["documents"]
    }
    assert_error(client.delete(f"/v1/documents/{doc_id}"), 404, "not_found")

    r = client.post("/v1/reindex")
    assert r.status_code == 200
    assert sorted(r.json()["unchanged"]) == sorted(d["source"] for d in before["documents"])


@pytest.mark.parametrize(
    "name",
    [
        "../escape.txt",
        "..\\escape.txt",
        "/etc/evil.txt",
        "sub/dir.txt",
        ".hidden.txt",
        "semi;colon.txt",
        "",
    ],
)
def test_upload_refuses_unsafe_names(
    client: httpx.Client, svc_settings: Settings, name: str
) -> None:
    r = client.post("/v1/documents", files=[("files", (name, b"text", "text/plain"))])
    # An empty name is not even a file part for the multipart parser (422); the rest are 400.
    assert r.status_code in (400, 422)
    assert_error(r, r.status_code)
    assert not (svc_settings.corpus_dir.parent / "escape.txt").exists()
    assert not list(svc_settings.corpus_dir.glob(".upload-*"))


def test_upload_limits(client: httpx.Client, svc_settings: Settings) -> None:
    assert_error(
        client.post(
            "/v1/documents", files=[("files", ("tool.exe", b"MZ", "application/octet-stream"))]
        ),
        415,
        "unsupported_media_type",
    )
    too_big = b"a" * (svc_settings.max_upload_bytes + 1)
    assert_error(
        client.post("/v1/documents", files=[("files", ("big.txt", too_big))]),
        413,
        "payload_too_large",
    )
    many = [("files", (f"f{i}.txt", b"x")) for i in range(svc_settings.max_upload_files + 1)]
    assert_error(client.post("/v1/documents", files=many), 413)
    assert not (svc_settings.corpus_dir / "big.txt").exists()
    assert not (svc_settings.corpus_dir / "f0.txt").exists()


def test_unreadable_uploads_are_refused_whole(client: httpx.Client, svc_settings: Settings) -> None:
    files = [
        ("files", ("fine.txt", b"A perfectly readable note.\n")),
        ("files", ("broken.pdf", b"%PDF-1.4 this is not really a pdf")),
    ]
    err = assert_error(client.post("/v1/documents", files=files), 422, "document_error")
    assert "broken.pdf" in err["message"]
    assert_error(client.post("/v1/documents", files=[("files", ("empty.md", b"  \n"))]), 422)
    for name in ("fine.txt", "broken.pdf", "empty.md"):
        assert not (svc_settings.corpus_dir / name).exists()
    assert not list(svc_settings.corpus_dir.glob(".upload-*"))


def test_request_limits(client: httpx.Client, svc_settings: Settings) -> None:
    big = "x" * (svc_settings.max_body_bytes + 10)
    assert_error(client.post("/v1/ask", json={"question": big}), 413, "payload_too_large")

    # Without a declared length the body is counted as it arrives.
    def chunks() -> Any:
        yield b'{"question": "'
        for _ in range(svc_settings.max_body_bytes // 1024 + 2):
            yield b"y" * 1024
        yield b'"}'

    r = client.post("/v1/ask", content=chunks(), headers={"content-type": "application/json"})
    assert_error(r, 413, "payload_too_large")

    long_q = "why " * (svc_settings.max_question_chars // 4 + 1)
    err = assert_error(client.post("/v1/ask", json={"question": long_q}), 422, "validation_error")
    assert "question" in err["message"] and long_q not in err["message"]

    turns = [{"role": "user", "content": "hi"}] * (svc_settings.max_history_turns + 1)
    assert_error(client.post("/v1/ask", json={"question": "ok?", "history": turns}), 422)
    assert_error(client.post("/v1/ask", json={"question": "ok?", "top_k": 0}), 422)
    assert_error(client.post("/v1/ask", json={"question": "ok?", "mode": "psychic"}), 422)
    assert_error(
        client.post("/v1/ask", content=b"{not json", headers={"content-type": "application/json"}),
        422,
    )
    assert_error(client.post("/v1/ask", json={}), 422)


def test_unknown_route_and_method_have_the_error_shape(client: httpx.Client) -> None:
    assert_error(client.get("/v1/nope"), 404, "not_found")
    assert_error(client.get("/v1/ask"), 405, "method_not_allowed")


def test_probes_and_metrics(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"]["model"] == "loaded"

    client.post("/v1/ask", json={"question": QUESTION})
    client.post(
        "/v1/ask", json={"question": "What is the boiling point of liquid nitrogen on Mars?"}
    )
    client.get("/v1/documents/unknown-id-for-metrics")
    client.get("/ui/")
    text = client.get("/metrics").text
    assert 'route="/ui/"' in text  # the UI's routes are labelled under its mount point
    assert 'groundqa_http_requests_total{method="POST",route="/v1/ask",status="200"}' in text
    assert 'route="/v1/documents/{doc_id}"' not in text or "unknown-id-for-metrics" not in text
    assert (
        'groundqa_http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/v1/ask"}'
        in text
    )
    assert 'groundqa_abstentions_total{interface="api"}' in text
    chunks = next(line for line in text.splitlines() if line.startswith("groundqa_index_chunks "))
    assert float(chunks.split()[1]) > 0


def test_request_id_is_honoured_or_generated(client: httpx.Client) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123.def"})
    assert r.headers["x-request-id"] == "abc-123.def"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers[
        "x-request-id"
    ]
    assert generated != "bad id\twith spaces" and len(generated) == 32
    err = assert_error(client.get("/v1/nope", headers={"X-Request-ID": "trace-42"}), 404)
    assert err["request_id"] == "trace-42"


def test_openapi_and_docs(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/ask", "/v1/ask/stream", "/v1/chat/completions", "/v1/documents", "/readyz"} <= set(
        spec["paths"]
    )
    assert "swagger" in client.get("/docs").text.lower()


def test_concurrent_asks_get_the_same_answers_as_one_at_a_time(client: httpx.Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    questions = [
        QUESTION,
        "When was the ceasefire announced?",
        "How many Iranian officers were barred from Wadi Barada?",
        "Which Iranian airbase did Russian warplanes fly from?",
        "When was the ceasefire announced, and when was the Geneva statement issued?",
        "Who is the Iranian foreign minister?",
    ]

    def ask(q: str) -> tuple[int, Any]:
        r = client.post("/v1/ask", json={"question": q})
        body = r.json()
        keep = ("answer", "short_answer", "abstained", "reason", "confidence", "citations")
        return r.status_code, {k: body.get(k) for k in keep}

    alone = {q: ask(q) for q in questions}
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(ask, questions * 4))
    for q, got in zip(questions * 4, together, strict=True):
        assert got == alone[q], q
    assert {status for status, _ in together} == {200}


def test_a_full_answer_queue_is_refused_with_503_and_retry_after(
    svc_settings: Settings, qa: QA
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    tight = svc_settings.model_copy(update={"max_concurrent_answers": 1, "max_queued_answers": 1})
    app = create_app(tight, QA(tight, index=qa.index), warmup=False)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=120) as c:
        questions = [f"{QUESTION} ({i})" for i in range(8)]  # distinct: no cache helps

        def ask(q: str) -> httpx.Response:
            return c.post("/v1/ask", json={"question": q})

        with ThreadPoolExecutor(max_workers=8) as pool:
            replies = list(pool.map(ask, questions))
        scraped = c.get("/metrics").text
    refused = next(ln for ln in scraped.splitlines() if ln.startswith("groundqa_answers_refused "))
    statuses = [r.status_code for r in replies]
    assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
    for r in replies:
        if r.status_code == 503:
            assert r.json()["error"]["type"] == "overloaded"
            assert int(r.headers["Retry-After"]) >= 1
    # At least the request holding the slot and the one queued behind it are answered.
    assert statuses.count(200) >= 2
    assert float(refused.split()[1]) == statuses.count(503)
