"""``groundqa ask`` / ``--json`` / ``--batch`` / ``chat`` end to end, as separate processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from index import Index
from index.settings import IndexSettings
from service.result import ABSTAIN_ANSWER

from .conftest import source_text

GROUNDQA = Path(sys.executable).parent / "groundqa"


@pytest.fixture(scope="module")
def env(default_settings: IndexSettings, default_index: Index) -> dict[str, str]:
    """The environment of a user whose corpus is already ingested (the session's index)."""
    return {
        **os.environ,
        "GROUNDQA_CORPUS_DIR": str(default_settings.corpus_dir),
        "GROUNDQA_DATA_DIR": str(default_settings.data_dir),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "COLUMNS": "200",
    }


def run(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GROUNDQA), *args], input=stdin, env=env, capture_output=True, text=True, timeout=600
    )


def test_ask_json_prints_the_answer_object(env: dict[str, str]) -> None:
    p = run(env, "ask", "--json", "When was the ceasefire announced?")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    for key in (
        "answer",
        "short_answer",
        "abstained",
        "reason",
        "confidence",
        "standalone_question",
        "citations",
    ):
        assert key in out
    assert out["abstained"] is False and out["short_answer"] == "December 2016"
    c = out["citations"][0]
    assert {"n", "source", "title", "chunk_id", "start", "end", "quote", "support"} <= set(c)
    assert source_text(c["source"])[c["start"] : c["end"]] == c["quote"]


def test_ask_prints_numbered_citations_with_quotes(env: dict[str, str]) -> None:
    p = run(
        env,
        "ask",
        "--top-k",
        "3",
        "How many officers did Russia send to access the violations of the truce?",
    )
    assert p.returncode == 0, p.stderr
    assert "four officers" in p.stdout
    assert "[1]" in p.stdout and "“" in p.stdout  # the citation line and its quote


def test_batch_answers_each_line_and_reports_bad_lines(env: dict[str, str], tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "q1", "question": "When was the ceasefire announced?"}),
        "{not json",
        json.dumps({"id": "q3", "question": "Who won the 2018 FIFA World Cup?"}),
        json.dumps(
            {
                "id": "q4",
                "question": "Who was barred from it?",
                "history": [{"role": "user", "content": "What is happening in Wadi Barada?"}],
            }
        ),
        json.dumps({"id": "q5", "question": ""}),
    ]
    f = tmp_path / "questions.jsonl"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    p = run(env, "ask", "--batch", str(f))
    assert p.returncode == 1  # some lines failed
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert [o["id"] for o in out] == ["q1", 2, "q3", "q4", "q5"]
    assert out[0]["short_answer"] == "December 2016"
    assert "error" in out[1] and "error" in out[4]
    assert out[2]["abstained"] and out[2]["answer"] == ABSTAIN_ANSWER
    assert "Wadi Barada" in out[3]["standalone_question"]


def test_batch_from_stdin(env: dict[str, str]) -> None:
    p = run(
        env,
        "ask",
        "--batch",
        "-",
        stdin=json.dumps({"id": 7, "question": "When was the ceasefire announced?"}),
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["id"] == 7


def test_chat_reads_piped_questions_with_history(env: dict[str, str]) -> None:
    p = run(
        env,
        "chat",
        stdin="What is happening in Wadi Barada?\nWho was barred from it?\nexit\nnever asked\n",
    )
    assert p.returncode == 0, p.stderr
    assert "searching for:" in p.stdout and "Wadi Barada" in p.stdout
    assert "never asked" not in p.stdout
