"""``groundqa ingest | sources | search`` end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from index.cli import register
from index.embedding import Embedder
from index.settings import IndexSettings
from tests.conftest import CORPUS, ROOT, VENV_BIN


def cli_app() -> typer.Typer:
    """A root like service.cli's: options build the settings, the index commands hang off it."""
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context, corpus_dir: Path = Path("corpus"), data_dir: Path = Path("data")):  # type: ignore[no-untyped-def]
        ctx.obj = IndexSettings(corpus_dir=corpus_dir, data_dir=data_dir)

    register(app, lambda ctx: ctx.find_root().obj)
    return app


def test_cli_ingest_sources_search(tmp_path: Path, embedder: Embedder) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "empty.txt").write_text("")
    base = ["--corpus-dir", str(corpus), "--data-dir", str(tmp_path / "data")]
    runner = CliRunner()
    app = cli_app()

    out = runner.invoke(app, [*base, "ingest"])
    assert out.exit_code == 0, out.output
    assert "added 2, updated 0, unchanged 0, removed 0, skipped 1" in out.output
    assert "skipped empty.txt: empty file" in out.output

    out = runner.invoke(app, [*base, "ingest", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["chunks_embedded"] == 0 and len(report["unchanged"]) == 2

    out = runner.invoke(app, [*base, "sources", "--json"])
    assert out.exit_code == 0, out.output
    sources = json.loads(out.output)
    assert sorted(s["source"] for s in sources) == sorted(p.name for p in CORPUS.iterdir())
    assert all(s["chunks"] > 0 and len(s["id"]) == 16 for s in sources)

    out = runner.invoke(
        app, [*base, "search", "Which valley near Damascus was attacked?", "-k", "5"]
    )
    assert out.exit_code == 0, out.output
    assert "Wadi Barada" in out.output

    out = runner.invoke(
        app, [*base, "search", "Which valley near Damascus was attacked?", "--json"]
    )
    hits = json.loads(out.output)
    assert any("Wadi Barada" in h["chunk"]["text"] for h in hits[:3])
    for h in hits:
        text = (corpus / h["chunk"]["source"]).read_text(encoding="utf-8")
        assert text[h["chunk"]["start"] : h["chunk"]["end"]] == h["chunk"]["text"]


def _groundqa_ready() -> bool:
    try:
        import service.commands  # noqa: F401
    except ImportError:
        return False
    return (VENV_BIN / "groundqa").exists()


@pytest.mark.skipif(not _groundqa_ready(), reason="service.commands is not written yet")
def test_groundqa_binary_end_to_end(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    env = {
        **os.environ,
        "GROUNDQA_CORPUS_DIR": str(corpus),
        "GROUNDQA_DATA_DIR": str(tmp_path / "d"),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VENV_BIN / "groundqa"), *args], env=env, cwd=ROOT, capture_output=True, text=True
        )

    done = run("ingest")
    assert done.returncode == 0, done.stderr
    assert "added 2" in done.stdout
    listed = json.loads(run("sources", "--json").stdout)
    assert len(listed) == 2
    found = run("search", "Which valley near Damascus was attacked?", "-k", "5", "--json")
    assert found.returncode == 0, found.stderr
    assert any("Wadi Barada" in h["chunk"]["text"] for h in json.loads(found.stdout)[:3])
    missing = run("--corpus-dir", str(tmp_path / "nope"), "ingest")
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def test_cli_collections_create_ingest_list_delete(tmp_path: Path, embedder: Embedder) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "otters.txt").write_text("Otters\n\nSea otters crack shellfish on stones.")
    base = ["--corpus-dir", str(CORPUS), "--data-dir", str(tmp_path / "data")]
    runner = CliRunner()
    app = cli_app()

    def run(*args: str, **kw: str) -> str:
        out = runner.invoke(app, [*base, *args], **kw)  # type: ignore[arg-type]
        assert out.exit_code == 0, out.output
        return str(out.output)

    assert "created otters" in run("collections", "create", "otters")
    assert "already exists" in run("collections", "create", "otters")
    assert runner.invoke(app, [*base, "collections", "create", "ab"]).exit_code != 0
    run("ingest", "--collection", "otters", str(other))
    listed = json.loads(run("collections", "list", "--json"))
    assert [(c["name"], c["documents"]) for c in listed] == [("groundqa", 0), ("otters", 1)]
    sources = json.loads(run("sources", "--collection", "otters", "--json"))
    assert [s["source"] for s in sources] == ["otters.txt"]
    hits = json.loads(run("search", "shellfish", "--collection", "otters", "--json"))
    assert {h["chunk"]["source"] for h in hits} == {"otters.txt"}
    missing = runner.invoke(app, [*base, "sources", "--collection", "nosuch"])
    assert missing.exit_code != 0 and "nosuch" in str(missing.exception or missing.output)

    # Delete asks first: "n" keeps the collection, --yes does not ask.
    refused = runner.invoke(app, [*base, "collections", "delete", "otters"], input="n\n")
    assert refused.exit_code == 1 and "1 documents" in refused.output
    assert len(json.loads(run("collections", "list", "--json"))) == 2
    assert "deleted otters" in run("collections", "delete", "otters", "--yes")
    assert [c["name"] for c in json.loads(run("collections", "list", "--json"))] == ["groundqa"]
