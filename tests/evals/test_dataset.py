"""The default eval set: its format, its coverage, and gold answers that the sources really say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals import metrics as m
from evals.dataset import DEFAULT_SET, USER_SET, EvalItem, load_set
from index.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
ITEMS = load_set(DEFAULT_SET)
USER_ITEMS = load_set(USER_SET)


def _source(name: str) -> str:
    return (ROOT / "corpus" / name).read_text(encoding="utf-8")


def test_coverage_of_the_default_set() -> None:
    single = [i for i in ITEMS if i.answerable and not i.history]
    assert len(single) >= 40
    assert len([i for i in ITEMS if not i.answerable]) >= 20
    assert len([i for i in ITEMS if i.history]) >= 10
    assert {s for i in single for s in i.sources} == {p.name for p in (ROOT / "corpus").iterdir()}
    assert any(i.required for i in single)
    assert any(len(i.sources) > 1 for i in single)
    for kind in ("off-topic", "absent", "actor-swap", "false-premise", "injection"):
        assert any(i.category == kind for i in ITEMS), kind
    for item in ITEMS:
        if item.history:
            assert item.history[-1].role == "assistant"


def test_user_set_is_new_wording() -> None:
    assert len([i for i in USER_ITEMS if i.answerable]) >= 25
    assert len([i for i in USER_ITEMS if not i.answerable]) >= 8
    assert not {i.question.lower() for i in USER_ITEMS} & {i.question.lower() for i in ITEMS}


@pytest.mark.parametrize(
    "item", [i for i in (*ITEMS, *USER_ITEMS) if i.answerable], ids=lambda i: i.id
)
def test_gold_answers_occur_in_gold_sources(item: EvalItem) -> None:
    texts = [_source(s) for s in item.sources]
    for group in item.required_groups():
        assert any(m.contains_any(t, group) for t in texts), group
    if not item.required:
        # Every accepted phrasing must be something a source says, not a paraphrase.
        found = [a for a in item.answers if any(m.contains(t, a) for t in texts)]
        assert found, item.answers
    if len(item.sources) > 1:
        # A cross-document item needs each of its sources for some required part.
        for text in texts:
            assert any(m.contains_any(text, g) for g in item.required_groups())


def test_loader_rejects_bad_items(tmp_path: Path) -> None:
    good = {
        "id": "x",
        "category": "c",
        "question": "q?",
        "history": [],
        "answerable": True,
        "answers": ["a"],
        "sources": ["s.txt"],
    }
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "y"}) + "\n")
    assert [i.id for i in load_set(path)] == ["x", "y"]
    for bad in (
        {**good, "answers": []},  # answerable without answers
        {**good, "sources": []},  # answerable without gold sources
        {**good, "answerable": False},  # unanswerable with answers
        {**good, "history": [{"role": "system", "content": "x"}]},
    ):
        path.write_text(json.dumps(bad) + "\n")
        with pytest.raises(ConfigError, match=":1:"):
            load_set(path)
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(ConfigError, match="duplicate"):
        load_set(path)
    path.write_text("{not json\n")
    with pytest.raises(ConfigError):
        load_set(path)
