"""Collections and scoped questions over real HTTP: routing, filters, per-key access, delete."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from index import Index
from index.embedding import Embedder
from service.app import create_app
from service.qa import QA
from tests.conftest import CORPUS
from tests.service.conftest import LiveServer, service_settings

A = "000_e8b04126fa046505.txt"  # the Russia/Iran differences article (Hamadan airbase)
B = "002_3e6e483da8deb930.txt"  # the "marriage of convenience" article (Lattakia base)
HAMADAN = "From which airbase in Iran did Moscow announce its warplanes were being launched?"
LATTAKIA = "Where are plans underway to form a permanent Russian military base?"
KEY_ALL = "all-collections-key-0123456789"
KEY_SECOND = "second-only-key-0123456789ab"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("collections")
    shutil.copytree(CORPUS, root / "corpus")
    settings = service_settings(
        root / "corpus",
        root / "data",
        api_keys=f"{KEY_ALL},{KEY_SECOND}",
        key_collections={"key2": ["second"]},
    )
    index = Index(settings, embedder=embedder)
    index.ingest()
    with LiveServer(create_app(settings, QA(settings, index=index), warmup=False)) as live:
        live.settings = settings  # type: ignore[attr-defined]
        yield live


def _client(server: LiveServer, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, timeout=120, headers={"Authorization": f"Bearer {key}"}
    )


@pytest.fixture(scope="module")
def admin(server: LiveServer) -> Iterator[httpx.Client]:
    with _client(server, KEY_ALL) as c:
        r = c.post("/v1/collections", json={"name": "second"})
        assert r.status_code == 201, r.text
        assert c.post("/v1/collections", json={"name": "second"}).status_code == 200
        files = {"files": (B, (CORPUS / B).read_bytes(), "text/plain")}
        r = c.post("/v1/documents", params={"collection": "second"}, files=files)
        assert r.status_code == 200, r.text
        assert r.json()["added"] == [B]
        yield c


def _cited(answer: dict[str, object]) -> set[str]:
    return {c["source"] for c in answer["citations"]}  # type: ignore[attr-defined, index]


def test_collections_are_listed_and_hold_their_own_documents(admin: httpx.Client) -> None:
    listed = admin.get("/v1/collections").json()
    assert listed["default"] == "groundqa"
    by_name = {c["name"]: c for c in listed["collections"]}
    assert set(by_name) == {"groundqa", "second"}
    assert by_name["second"]["documents"] == 1 and by_name["groundqa"]["documents"] == 2
    docs = admin.get("/v1/documents", params={"collection": "second"}).json()["documents"]
    assert [d["source"] for d in docs] == [B]
    assert len(admin.get("/v1/documents").json()["documents"]) == 2
    assert admin.post("/v1/collections", json={"name": "x"}).status_code == 400


def test_a_question_is_answered_only_from_the_collection_asked(admin: httpx.Client) -> None:
    r = admin.post("/v1/ask", json={"question": LATTAKIA, "collection": "second"}).json()
    assert not r["abstained"] and "Lattakia" in r["answer"]
    assert r["collection"] == "second" and r["scope"] is None
    assert _cited(r) == {B}
    # The answer lives only in the default collection's other document: "second" must abstain.
    r = admin.post("/v1/ask", json={"question": HAMADAN, "collection": "second"}).json()
    assert r["abstained"] and r["citations"] == []
    assert {p["source"] for p in r["related"]} <= {B}
    r = admin.post("/v1/ask", json={"question": HAMADAN}).json()
    assert not r["abstained"] and "Hamadan" in r["answer"] and r["collection"] == "groundqa"


def test_a_scoped_question_abstains_away_from_its_answer_and_answers_inside_it(
    admin: httpx.Client,
) -> None:
    away = admin.post("/v1/ask", json={"question": HAMADAN, "filter": {"documents": [B]}}).json()
    assert away["abstained"] and away["scope"] == [B]
    assert {p["source"] for p in away["related"]} <= {B}
    documents = admin.get("/v1/documents").json()["documents"]
    doc_id = next(d["id"] for d in documents if d["source"] == A)
    inside = admin.post(
        "/v1/ask", json={"question": HAMADAN, "filter": {"documents": [doc_id]}}
    ).json()
    assert not inside["abstained"] and "Hamadan" in inside["answer"] and inside["scope"] == [A]
    assert _cited(inside) == {A}
    by_glob = admin.post("/v1/ask", json={"question": HAMADAN, "filter": {"glob": "002_*"}}).json()
    assert by_glob["abstained"] and by_glob["scope"] == [B]
    missing = admin.post("/v1/ask", json={"question": HAMADAN, "filter": {"documents": ["no.txt"]}})
    assert missing.status_code == 404


def test_stream_and_openai_chat_take_the_collection_and_filter(
    server: LiveServer, admin: httpx.Client
) -> None:
    body = {"question": LATTAKIA, "collection": "second"}
    with admin.stream("POST", "/v1/ask/stream", json=body) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line.startswith("data:")]
    final = json.loads(lines[-1][5:])
    assert final["collection"] == "second" and _cited(final) == {B}

    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY_ALL)
    assert {m.id for m in sdk.models.list().data} == {"groundqa", "second"}
    by_model = sdk.chat.completions.create(
        model="second", messages=[{"role": "user", "content": HAMADAN}]
    )
    assert by_model.abstained  # type: ignore[attr-defined]
    explicit = sdk.chat.completions.create(
        model="groundqa",
        messages=[{"role": "user", "content": HAMADAN}],
        extra_body={"filter": {"documents": [A]}},
    )
    assert "Hamadan" in (explicit.choices[0].message.content or "")
    scoped_away = sdk.chat.completions.create(
        model="anything",
        messages=[{"role": "user", "content": HAMADAN}],
        extra_body={"collection": "groundqa", "filter": {"documents": [B]}},
    )
    assert scoped_away.abstained  # type: ignore[attr-defined]
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="nosuch", messages=[{"role": "user", "content": "x?"}])


def _error(r: httpx.Response) -> tuple[int, object]:
    body = r.json()
    body["error"].pop("request_id")
    return r.status_code, body


def test_a_key_limited_to_collections_gets_404_outside_them_like_a_missing_one(
    server: LiveServer, admin: httpx.Client
) -> None:
    with _client(server, KEY_SECOND) as c:
        ok = c.post("/v1/ask", json={"question": LATTAKIA, "collection": "second"})
        assert ok.status_code == 200 and not ok.json()["abstained"]
        assert [x["name"] for x in c.get("/v1/collections").json()["collections"]] == ["second"]
        assert [m["id"] for m in c.get("/v1/models").json()["data"]] == ["groundqa", "second"]
        checks = [
            ("POST", "/v1/ask", {"json": {"question": HAMADAN, "collection": "{}"}}),
            ("POST", "/v1/ask/stream", {"json": {"question": HAMADAN, "collection": "{}"}}),
            (
                "POST",
                "/v1/chat/completions",
                {"json": {"model": "{}", "messages": [{"role": "user", "content": HAMADAN}]}},
            ),
            ("GET", "/v1/documents", {"params": {"collection": "{}"}}),
            ("POST", "/v1/reindex", {"params": {"collection": "{}"}}),
            ("DELETE", "/v1/collections/{}", {"params": {}}),
        ]
        for method, path, kwargs in checks:
            got = []
            for name in ("groundqa", "nosuchthing"):
                filled = json.loads(json.dumps(kwargs).replace('"{}"', json.dumps(name)))
                r = c.request(method, path.replace("{}", name), **filled)
                status, body = _error(r)
                got.append((status, json.dumps(body).replace(name, "NAME")))
            # The same 404 body for a hidden collection as for one that does not exist.
            assert got[0] == got[1] and got[0][0] == 404, (path, got)
        # The default collection is outside this key's set too, when not named.
        assert c.post("/v1/ask", json={"question": HAMADAN}).status_code == 404
        assert c.post("/v1/collections", json={"name": "mine"}).status_code == 403
        assert c.delete("/v1/collections/second").status_code == 403
    assert admin.post("/v1/ask", json={"question": HAMADAN}).status_code == 200


def test_deleting_a_collection_removes_it_and_nothing_else(
    server: LiveServer, admin: httpx.Client
) -> None:
    settings = server.settings  # type: ignore[attr-defined]
    before = admin.post("/v1/ask", json={"question": HAMADAN}).json()
    assert admin.post("/v1/collections", json={"name": "doomed"}).status_code == 201
    files = {"files": (A, (CORPUS / A).read_bytes(), "text/plain")}
    assert admin.post("/v1/documents", params={"collection": "doomed"}, files=files).is_success
    uploads = Path(settings.data_dir) / "corpora" / "doomed"
    assert (uploads / A).is_file()
    r = admin.delete("/v1/collections/doomed")
    assert r.status_code == 200, r.text
    assert r.json()["chunks_removed"] > 0 and not uploads.exists()
    gone = admin.post("/v1/ask", json={"question": HAMADAN, "collection": "doomed"})
    assert gone.status_code == 404
    assert admin.delete("/v1/collections/doomed").status_code == 404
    assert admin.delete("/v1/collections/groundqa").status_code == 400
    names = [c["name"] for c in admin.get("/v1/collections").json()["collections"]]
    assert names == ["groundqa", "second"]
    after = admin.post("/v1/ask", json={"question": HAMADAN}).json()
    for key in ("answer", "citations", "confidence", "abstained"):
        assert after[key] == before[key]


def test_key_collections_must_name_configured_keys() -> None:
    from pydantic import ValidationError

    from service.settings import Settings

    ok = Settings(api_keys=KEY_ALL, key_collections={"key1": ["second"]}, _env_file=None)  # type: ignore[call-arg]
    assert ok.key_collections == {"key1": ["second"]}
    with pytest.raises(ValidationError, match="key2"):
        Settings(api_keys=KEY_ALL, key_collections={"key2": ["second"]}, _env_file=None)  # type: ignore[call-arg]
