"""The eval runner, the gate and the SQuAD benchmark on the real system (model, Chroma)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from evals.cli import register
from evals.faithful import verifier_judge
from index import Index
from index.embedding import Embedder
from service.result import Answer, Citation
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
GROUNDQA = Path(sys.executable).parent / "groundqa"


@pytest.fixture(scope="module")
def eval_settings(tmp_path_factory: pytest.TempPathFactory, corpus_copy: Path) -> Settings:
    return Settings(corpus_dir=corpus_copy, data_dir=tmp_path_factory.mktemp("eval-data"))


def _clean_env(**extra: str) -> dict[str, str]:
    # The caller's GROUNDQA_* settings must not leak into the run under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDQA_")}
    return {**env, **extra}


def _eval_gate(tmp_path: Path, corpus: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``groundqa eval --gate`` on the default set in a fresh data dir, as CI runs it."""
    return subprocess.run(
        [str(GROUNDQA), "eval", "--gate", "--json", "run.json", "--report", "run.md"],
        cwd=tmp_path,
        env=_clean_env(
            GROUNDQA_CORPUS_DIR=str(corpus),
            GROUNDQA_DATA_DIR=str(tmp_path / "data"),
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            ANONYMIZED_TELEMETRY="False",
            **env,
        ),
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_groundqa_eval_gate_passes_on_the_real_system(tmp_path: Path, corpus_copy: Path) -> None:
    out = _eval_gate(tmp_path, corpus_copy)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "gate passed" in out.stdout
    summary = json.loads((tmp_path / "run.json").read_text())
    assert summary["meta"]["items"] == len(summary["items"]) > 0
    assert "## Failures" in (tmp_path / "run.md").read_text()


def test_groundqa_eval_gate_fails_without_verification_and_abstention(
    tmp_path: Path, corpus_copy: Path
) -> None:
    out = _eval_gate(tmp_path, corpus_copy, GROUNDQA_VERIFY="false", GROUNDQA_ABSTAIN="false")
    assert out.returncode == 1, out.stdout[-4000:] + out.stderr[-4000:]
    failed = out.stdout.split("gate FAILED", 1)[1]
    for metric in ("abstention.rate_unanswerable", "score", "citations.precision"):
        assert f"  - {metric} = " in failed, (metric, failed)
    # The items that went from abstaining to answering are named by id.
    assert "flipped: u-inj-france (injection): abstained -> answered" in out.stdout
    summary = json.loads((tmp_path / "run.json").read_text())
    assert summary["meta"]["verify"] is False and summary["meta"]["abstain"] is False


def test_faithfulness_judge_uses_the_cited_quote(embedder: Embedder) -> None:
    judge = verifier_judge(embedder, min_support=0.5)
    quote = "Russia responded by sending four officers to access the violations of the truce."
    cite = Citation(
        n=1,
        source="a.txt",
        title="A",
        chunk_id="c1",
        start=0,
        end=len(quote),
        quote=quote,
        support=0.9,
    )

    def answer(text: str) -> Answer:
        return Answer(
            question="q",
            standalone_question="q",
            answer=text,
            abstained=False,
            confidence=0.9,
            mode="extractive",
            citations=[cite],
        )

    assert judge(answer(quote + " [1]")) == 1
    assert judge(answer("The Eiffel Tower was finished in 1889 in Paris. [1]")) == 0
    assert judge(answer(quote + " [2]")) == 0  # a marker with no citation behind it


SQUAD = {
    "version": "v2.0",
    "data": [
        {
            "title": "Glaciers",
            "paragraphs": [
                {
                    "context": "The Perito Moreno Glacier is located in Los Glaciares National "
                    "Park in Santa Cruz Province, Argentina. It is one of the most important "
                    "tourist attractions in Argentine Patagonia.",
                    "qas": [
                        {
                            "id": "q1",
                            "question": "In which national park is the Perito Moreno Glacier?",
                            "is_impossible": False,
                            "answers": [
                                {"text": "Los Glaciares National Park", "answer_start": 50}
                            ],
                        },
                        {
                            "id": "q2",
                            "question": "How tall is the Perito Moreno Glacier's highest peak?",
                            "is_impossible": True,
                            "answers": [],
                            "plausible_answers": [{"text": "Argentina", "answer_start": 99}],
                        },
                    ],
                }
            ],
        },
        {
            "title": "Volcanoes",
            "paragraphs": [
                {
                    "context": "Mount Etna is an active stratovolcano on the east coast of "
                    "Sicily, Italy. It is the highest active volcano in Europe outside the "
                    "Caucasus.",
                    "qas": [
                        {
                            "id": "q3",
                            "question": "On which island is Mount Etna?",
                            "is_impossible": False,
                            "answers": [{"text": "Sicily", "answer_start": 59}],
                        }
                    ],
                }
            ],
        },
    ],
}


def test_squad_command_uses_its_own_collection(
    tmp_path: Path, eval_settings: Settings, embedder: Embedder
) -> None:
    squad = tmp_path / "tiny-squad.json"
    squad.write_text(json.dumps(SQUAD))
    settings = eval_settings.model_copy(update={"data_dir": tmp_path / "data"})
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = settings

    register(app, lambda ctx: ctx.find_root().obj)
    preds = tmp_path / "preds.json"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--squad",
            str(squad),
            "--predictions",
            str(preds),
            "--json",
            str(tmp_path / "sq.json"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "| HasAns | 2 |" in result.output
    predictions = json.loads(preds.read_text())
    assert set(predictions) == {"q1", "q2", "q3"}
    report = json.loads((tmp_path / "sq.json").read_text())
    assert report["meta"]["collection"].startswith("squad-")
    assert report["meta"]["collection"] != settings.collection
    metrics = report["metrics"]
    assert metrics["recall@10"] == 100.0  # two paragraphs: both are always retrieved
    for item in report["items"]:
        assert item["prediction"] == predictions[item["id"]]
        assert (item["prediction"] == "") == item["abstained"]
    # The default collection was never created in this data dir.
    assert Index(settings, embedder=embedder).count() == 0
