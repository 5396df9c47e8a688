"""The UI in a real browser (Debian chromium through Playwright)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT
from tests.service.conftest import QUESTION, LiveServer

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-output"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(live: LiveServer) -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        print(f"skipping: {CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(90_000)
        pg.goto(f"{live.url}/ui/")
        pg.wait_for_selector("#gqa-question textarea")
        yield pg
        browser.close()


RESULTS = "#gqa-chat .gqa-answer, #gqa-chat .gqa-abstain"


def ask(page: Any, question: str) -> Any:
    """Ask through the UI and return the new answer's element once it is final."""
    before = page.locator(RESULTS).count()
    page.fill("#gqa-question textarea", question)
    page.click("#gqa-ask")
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length > n", arg=[RESULTS, before]
    )
    return page.locator(RESULTS).last


def test_citation_opens_the_highlighted_passage(page: Any) -> None:
    answer = ask(page, QUESTION)
    assert "Wadi Barada" in answer.locator(".gqa-text").inner_text()
    # the reader's short answer comes first, the quoted sentence under it
    short = answer.locator(".gqa-short")
    assert short.count() == 1 and short.inner_text().strip()
    assert short.inner_text().strip() in answer.locator(".gqa-text").inner_text()
    assert short.evaluate(
        "el => el.compareDocumentPosition(el.parentElement.querySelector('.gqa-text')) === 4"
    )
    cite = answer.locator("a.gqa-cite", has_text="[1]")
    assert cite.count() == 1
    passage = answer.locator("details.gqa-passage").first
    mark = passage.locator("mark")
    assert not mark.is_visible()  # closed until the citation is clicked

    cite.click()
    mark.wait_for(state="visible")
    assert passage.evaluate("d => d.open")
    assert "Wadi Barada" in mark.inner_text()
    summary = passage.locator("summary").inner_text()
    assert "[1]" in summary and "chars" in summary and ".txt" in summary
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "ui-citation.png"), full_page=True)


def test_abstention_looks_different_and_shows_related(page: Any) -> None:
    answer = ask(page, "What is the boiling point of liquid nitrogen on Mars?")
    assert answer.evaluate("el => el.classList.contains('gqa-abstain')")
    label = answer.locator(".gqa-label").inner_text()
    assert "no answer" in label.lower()
    assert answer.locator("a.gqa-cite").count() == 0
    page.screenshot(path=str(SHOTS / "ui-abstention.png"), full_page=True)


def test_documents_panel_lists_the_corpus(page: Any) -> None:
    table = page.locator("#gqa-docs")
    table.wait_for()
    page.wait_for_function("() => document.querySelector('#gqa-docs').innerText.includes('.txt')")
    assert "000_e8b04126fa046505.txt" in table.inner_text()


def test_upload_through_the_ui(page: Any, live: LiveServer, tmp_path: Path) -> None:
    doc = tmp_path / "ui-upload-heron.md"
    doc.write_text("# Heron survey\n\nThe 2019 survey counted 412 grey herons at Lake Vessaro.\n")
    page.set_input_files("#gqa-files input[type=file]", str(doc))
    # The name shows while the file is still uploading; the value is set only once it is done,
    # when the file is listed (stem and extension apart) without the uploading notice.
    page.wait_for_function(
        "() => { const el = document.querySelector('#gqa-files');"
        " return el.innerText.includes('ui-upload-heron') && !el.querySelector('.uploading'); }"
    )
    page.click("#gqa-upload")
    page.wait_for_function(
        "() => document.querySelector('#gqa-status').innerText.includes('Ingested')"
    )
    assert "1 added" in page.locator("#gqa-status").inner_text()
    page.wait_for_function(
        "() => document.querySelector('#gqa-docs').innerText.includes('ui-upload-heron.md')"
    )
    try:
        answer = ask(page, "How many grey herons were counted at Lake Vessaro?")
        assert "412" in answer.locator(".gqa-text").inner_text()
    finally:
        with httpx.Client(base_url=live.url) as c:
            docs = c.get("/v1/documents").json()["documents"]
            doc_id = next(d["id"] for d in docs if d["source"] == "ui-upload-heron.md")
            assert c.delete(f"/v1/documents/{doc_id}").status_code == 200
