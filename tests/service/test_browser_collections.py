"""The collection picker and the document scope in a real browser (chromium via Playwright)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from index import Index
from index.collections import Collections
from index.embedding import Embedder
from service.app import create_app
from service.qa import QA
from tests.conftest import CORPUS
from tests.service.conftest import LiveServer, service_settings
from tests.service.test_browser import CHROMIUM, RESULTS, SHOTS, ask

pytestmark = pytest.mark.browser

A = "000_e8b04126fa046505.txt"
B = "002_3e6e483da8deb930.txt"
HAMADAN = "From which airbase in Iran did Moscow announce its warplanes were being launched?"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    root = tmp_path_factory.mktemp("ui-collections")
    shutil.copytree(CORPUS, root / "corpus")
    only_b = root / "second"
    only_b.mkdir()
    shutil.copy(CORPUS / B, only_b / B)
    settings = service_settings(root / "corpus", root / "data")
    index = Index(settings, embedder=embedder)
    index.ingest()
    cols = Collections(settings, embedder=embedder)
    cols.create("second")
    cols.index("second").ingest(only_b)
    with (
        LiveServer(create_app(settings, QA(settings, index=index), warmup=False)) as live,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        pg = browser.new_page(viewport={"width": 1400, "height": 1100})
        pg.set_default_timeout(90_000)
        pg.goto(f"{live.url}/ui/")
        pg.wait_for_selector("#gqa-question textarea")
        pg.wait_for_function("() => document.querySelector('#gqa-docs').innerText.includes('.txt')")
        yield pg
        browser.close()


def _pick(page: Any, elem: str, text: str) -> None:
    """Choose the option containing ``text`` in a Gradio dropdown."""
    page.click(f"#{elem} input")
    page.locator(f"#{elem} [data-testid=dropdown-option]", has_text=text).first.click()
    page.keyboard.press("Escape")


def _docs(page: Any) -> str:
    return str(page.locator("#gqa-docs").inner_text())


def test_collection_picker_switches_documents_and_answers(page: Any) -> None:
    assert A in _docs(page) and B in _docs(page)
    _pick(page, "gqa-collection", "second")
    page.wait_for_function(f"() => !document.querySelector('#gqa-docs').innerText.includes('{A}')")
    assert B in _docs(page)
    answer = ask(page, HAMADAN)  # its answer is only in the other collection
    assert answer.evaluate("el => el.classList.contains('gqa-abstain')")
    assert "Collection: second" in answer.locator(".gqa-where").inner_text()
    page.screenshot(path=str(SHOTS / "ui-collection.png"), full_page=True)
    _pick(page, "gqa-collection", "groundqa")
    page.wait_for_function(f"() => document.querySelector('#gqa-docs').innerText.includes('{A}')")
    # A new collection starts a new conversation.
    page.wait_for_function("(sel) => document.querySelectorAll(sel).length === 0", arg=RESULTS)
    answer = ask(page, HAMADAN)
    assert "Hamadan" in answer.locator(".gqa-text").inner_text()
    where = answer.locator(".gqa-where").inner_text()
    assert "Collection: groundqa" in where and "all documents" in where


def test_document_scope_limits_the_next_question(page: Any) -> None:
    _pick(page, "gqa-scope", B)
    answer = ask(page, HAMADAN)
    assert answer.evaluate("el => el.classList.contains('gqa-abstain')")
    assert f"limited to: {B}" in answer.locator(".gqa-where").inner_text()
    # Scope to the document that holds the answer instead.
    page.locator("#gqa-scope .token-remove.remove-all").click()
    _pick(page, "gqa-scope", A)
    answer = ask(page, HAMADAN)
    assert "Hamadan" in answer.locator(".gqa-text").inner_text()
    where = answer.locator(".gqa-where").inner_text()
    assert f"limited to: {A}" in where and B not in where
    page.screenshot(path=str(SHOTS / "ui-scope.png"), full_page=True)
