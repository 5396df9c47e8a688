"""API keys, rate limiting and the UI behind keys, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from pydantic import SecretStr

from service.api.security import BadFileName, KeyChecker, RateLimiter, safe_filename
from service.app import create_app
from service.qa import QA
from service.settings import Settings
from tests.service.conftest import QUESTION, LiveServer, service_settings

KEY_A = "alpha-key-0123456789abcdef"
KEY_B = "bravo-key-0123456789abcdef"


@pytest.fixture(scope="module")
def keyed(svc_settings: Settings, qa: QA) -> Iterator[LiveServer]:
    settings = service_settings(
        svc_settings.corpus_dir,
        svc_settings.data_dir,
        api_keys=f"{KEY_A},{KEY_B}",
        rate_limit_per_minute=4,
    )
    with LiveServer(create_app(settings, qa, warmup=False)) as server:
        yield server


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_every_route_but_probes_needs_a_key(keyed: LiveServer) -> None:
    with httpx.Client(base_url=keyed.url, timeout=60) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200
        bodies = set()
        for headers in (
            {},
            bearer("wrong-key-0123456789abcdef"),
            {"Authorization": KEY_A},
            {"Authorization": f"Basic {KEY_A}"},
            {"Authorization": "Bearer"},
        ):
            for method, path in (
                ("GET", "/v1/documents"),
                ("POST", "/v1/ask"),
                ("GET", "/metrics"),
                ("GET", "/openapi.json"),
                ("GET", "/docs"),
                ("GET", "/v1/models"),
                ("POST", "/v1/reindex"),
                ("DELETE", "/v1/documents/x"),
            ):
                r = c.request(method, path, headers=headers, json={"question": QUESTION})
                assert r.status_code == 401, (method, path, headers)
                assert r.headers["www-authenticate"] == "Bearer"
                err = r.json()["error"]
                bodies.add((err["type"], err["message"]))
        # The same body whatever was wrong: nothing says which part failed.
        assert bodies == {("unauthorized", "missing or invalid API key")}


def test_valid_keys_work_and_are_rate_limited_per_key(keyed: LiveServer) -> None:
    with httpx.Client(base_url=keyed.url, timeout=60) as c:
        statuses = [c.get("/v1/models", headers=bearer(KEY_A)).status_code for _ in range(6)]
        assert statuses[:4] == [200] * 4
        assert statuses[4:] == [429, 429]
        limited = c.get("/v1/models", headers=bearer(KEY_A))
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"]["type"] == "rate_limited"
        # Another key has its own bucket; probes are never limited.
        assert c.get("/v1/models", headers=bearer(KEY_B)).status_code == 200
        assert all(c.get("/healthz").status_code == 200 for _ in range(6))


def test_openai_sdk_sends_its_key_as_bearer(keyed: LiveServer) -> None:
    good = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key=KEY_B, max_retries=0)
    reply = good.chat.completions.create(
        model="groundqa", messages=[{"role": "user", "content": QUESTION}]
    )
    assert "Wadi Barada" in (reply.choices[0].message.content or "")
    bad = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key="not-a-valid-key-at-all", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_ui_requires_a_key_as_password(keyed: LiveServer) -> None:
    with httpx.Client(base_url=keyed.url, timeout=60, follow_redirects=True) as c:
        assert c.get("/ui/config").status_code == 401
        page = c.get("/ui/")
        assert page.status_code == 200  # the login page
        refused = c.post(
            "/ui/login", data={"username": "me", "password": "wrong-key-0123456789abcdef"}
        )
        assert refused.status_code == 400
        assert c.get("/ui/config").status_code == 401
        ok = c.post("/ui/login", data={"username": "me", "password": KEY_A})
        assert ok.status_code == 200
        assert c.get("/ui/config").status_code == 200


def test_anonymous_rate_limit_is_per_client_address(svc_settings: Settings, qa: QA) -> None:
    settings = service_settings(
        svc_settings.corpus_dir, svc_settings.data_dir, rate_limit_per_minute=2, ui=False
    )
    with (
        LiveServer(create_app(settings, qa, warmup=False)) as server,
        httpx.Client(base_url=server.url) as c,
    ):
        assert [c.get("/v1/models").status_code for _ in range(3)] == [200, 200, 429]


def test_key_checker() -> None:
    keys = KeyChecker([SecretStr(KEY_A), SecretStr(KEY_B)])
    assert keys.check(KEY_A) == "key1" and keys.check(KEY_B) == "key2"
    assert keys.check(KEY_A + "x") is None and keys.check("") is None and keys.check(None) is None
    assert keys.check_authorization(f"bearer {KEY_B}") == "key2"
    assert keys.check_authorization(KEY_B) is None
    assert not KeyChecker([]).enabled


def test_token_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    limiter = RateLimiter(60, clock=lambda: now[0])  # one token per second, burst of 60
    assert all(limiter.acquire("k") == 0 for _ in range(60))
    wait = limiter.acquire("k")
    assert wait == pytest.approx(1.0)
    assert RateLimiter.retry_after(wait) == "1"
    now[0] += 2.5
    assert limiter.acquire("k") == 0 and limiter.acquire("k") == 0
    assert limiter.acquire("k") > 0
    assert limiter.acquire("other") == 0
    assert RateLimiter(0).acquire("k") == 0


@pytest.mark.parametrize(
    "name",
    [
        "../a.txt",
        "a/b.txt",
        "a\\b.txt",
        ".env",
        ".hidden.md",
        " pad.txt",
        "nul\x00.txt",
        "",
        None,
        "semi;colon.txt",
        "a" * 300 + ".txt",
    ],
)
def test_safe_filename_refuses(name: str | None) -> None:
    with pytest.raises(BadFileName):
        safe_filename(name)


@pytest.mark.parametrize("name", ["report.pdf", "Résumé (v2).docx", "notes_2024-01.md", "a b.txt"])
def test_safe_filename_keeps_plain_names(name: str) -> None:
    assert safe_filename(name) == name


@pytest.mark.parametrize(
    ("raw", "count"),
    [("", 0), (f"{KEY_A},{KEY_B}", 2), (f" {KEY_A} , ", 1), (f'["{KEY_A}", "{KEY_B}"]', 2)],
)
def test_api_keys_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, count: int
) -> None:
    monkeypatch.setenv("GROUNDQA_API_KEYS", raw)
    keys = Settings().api_keys
    assert len(keys) == count
    assert all(k.get_secret_value() in (KEY_A, KEY_B) for k in keys)
