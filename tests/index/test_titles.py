"""Document titles: the line that reads like the headline, not a scraped caption."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.loaders import parse

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


@pytest.mark.parametrize(
    ("text", "title"),
    [
        # A caption before the headline; the headline recurs as the body's heading.
        (
            "Logo Wide\n\nRussia and Iran: Marriage of Convenience Will Come to An End\n\n"
            "Moscow and Tehran differ.\n"
            "Russia and Iran: Marriage of Convenience Will Come to An End\n",
            "Russia and Iran: Marriage of Convenience Will Come to An End",
        ),
        (
            "Menu\nHome\nThe Quiet Harbour Town Report\nBoats left at dawn.",
            "The Quiet Harbour Town Report",
        ),
        ("Intro\n# Volcano notes\n\nLava flows.", "Volcano notes"),
        # A short first line followed by body text is the title.
        (
            "Volcano notes\n\nLava flows downhill at night and the team measured it.",
            "Volcano notes",
        ),
        ("Title line\nbody text here.", "Title line"),
        ("Just one sentence of body text that ends.", "Just one sentence of body text that ends."),
    ],
)
def test_title_is_the_headline(text: str, title: str) -> None:
    assert parse(text.encode(), "doc.txt", "h").title == title


def test_default_corpus_titles_are_headlines() -> None:
    titles = {p.name: parse(p.read_bytes(), p.name, "h").title for p in CORPUS.glob("*.txt")}
    assert "Logo Wide" not in titles.values()
    assert titles["002_3e6e483da8deb930.txt"].startswith("Russia and Iran: Marriage of Convenience")
