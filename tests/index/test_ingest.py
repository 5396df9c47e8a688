"""Incremental ingestion, document formats and bad input."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import chromadb
import docx
import pytest
from chromadb.config import Settings as ChromaSettings
from fpdf import FPDF

from index import Index
from index.embedding import Embedder
from index.errors import CorpusError
from index.settings import IndexSettings
from tests.conftest import CORPUS

MakeSettings = Callable[..., IndexSettings]


class EncodeCounter:
    """Counts the chunk texts the real embedder is asked to encode."""

    def __init__(self, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.texts = 0
        real_chunks = embedder.encode_chunks

        def encode_chunks(texts: list[str]):  # type: ignore[no-untyped-def]
            self.calls += 1
            self.texts += len(texts)
            return real_chunks(texts)

        monkeypatch.setattr(embedder, "encode_chunks", encode_chunks)


def chunk_ids(settings: IndexSettings) -> set[str]:
    """Every chunk id in the serving collection, read straight from Chroma."""
    client = chromadb.PersistentClient(
        path=str(settings.data_dir / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    active = client.get_collection(f"{settings.collection}-registry").metadata["active"]
    return set(client.get_collection(active).get(include=[])["ids"])


def sentences(topic: str, n: int) -> str:
    return " ".join(f"The {topic} report number {i} says something specific." for i in range(n))


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    shutil.copytree(CORPUS, root)
    (root / "sub").mkdir()
    (root / "sub" / "notes.md").write_text("# Glacier notes\n\n" + sentences("glacier", 40))
    return root


def test_reingest_unchanged_embeds_nothing(
    corpus: Path, make_settings: MakeSettings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(corpus)
    first = Index(settings, embedder=embedder).ingest()
    assert sorted(first.added) == sorted(["sub/notes.md", *(p.name for p in CORPUS.iterdir())])
    assert first.chunks_embedded == first.chunks_total > 0
    ids = chunk_ids(settings)

    counter = EncodeCounter(embedder, monkeypatch)
    again = Index(settings, embedder=embedder).ingest()  # a new process-like Index
    assert counter.calls == 0 and counter.texts == 0
    assert again.chunks_embedded == 0
    assert sorted(again.unchanged) == sorted(first.added)
    assert not (again.added or again.updated or again.removed or again.skipped)
    assert chunk_ids(settings) == ids


def test_ingest_writes_the_keyword_index_without_loading_it(
    corpus: Path, make_settings: MakeSettings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An ingest process holds a group's tokens at a time: it spills them to segments, lists
    # them, and neither reads the corpus back from Chroma nor builds BM25 scores.
    from index import keyword

    settings = make_settings(corpus)
    idx = Index(settings, embedder=embedder)
    monkeypatch.setattr(Index, "_all_texts", lambda *a: pytest.fail("read back from Chroma"))
    monkeypatch.setattr(keyword, "_fast_bm25", lambda: pytest.fail("built BM25 at ingest"))
    idx.ingest()
    (notes := corpus / "sub" / "notes.md").write_text(
        "# Volcano notes\n\n" + sentences("volcano", 30)
    )
    idx.ingest()
    (kw,) = idx._keywords.values()
    assert isinstance(kw, keyword.BM25Index) and kw._docs is None
    monkeypatch.undo()
    searcher = Index(settings, embedder=embedder)  # another process: loads, scores, finds
    hits = searcher.search("volcano report", 5)
    assert hits[0].chunk.source == notes.relative_to(corpus).as_posix()
    assert hits[0].keyword_rank is not None
    assert all(h.keyword_rank is None for h in searcher.search("glacier", 5))


def test_changed_file_is_reembedded_and_deleted_file_removed(
    corpus: Path, make_settings: MakeSettings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(corpus)
    idx = Index(settings, embedder=embedder)
    idx.ingest()
    before = chunk_ids(settings)
    notes = corpus / "sub" / "notes.md"
    notes.write_text("# Volcano notes\n\n" + sentences("volcano", 30))
    victim = next(p for p in corpus.iterdir() if p.suffix == ".txt")
    victim.unlink()

    counter = EncodeCounter(embedder, monkeypatch)
    report = idx.ingest()
    assert report.updated == ["sub/notes.md"]
    assert report.removed == [victim.name]
    assert counter.texts == report.chunks_embedded > 0
    after = chunk_ids(settings)
    assert before - after, "the old chunks should be gone"
    assert idx.count() == len(after) == report.chunks_total
    assert {s.source for s in idx.sources()} == {
        p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file()
    }
    hits = idx.search("volcano report", 5)
    assert hits[0].chunk.source == "sub/notes.md"
    assert all("glacier" not in h.chunk.text for h in hits)
    with pytest.raises(KeyError):
        idx.document_text(victim.name)
    # The keyword side dropped the old text too: no hit is found by BM25 alone for "glacier".
    assert all(h.keyword_rank is None for h in idx.search("glacier", 5))


def test_remove_source(corpus: Path, make_settings: MakeSettings, embedder: Embedder) -> None:
    idx = Index(make_settings(corpus), embedder=embedder)
    idx.ingest()
    total = idx.count()
    removed = idx.remove_source("sub/notes.md")
    assert removed > 0 and idx.count() == total - removed
    assert "sub/notes.md" not in {s.source for s in idx.sources()}
    assert all(h.chunk.source != "sub/notes.md" for h in idx.search("glacier report", 10))
    assert idx.remove_source("sub/notes.md") == 0


def test_ids_stable_across_data_dirs(
    corpus: Path, make_settings: MakeSettings, embedder: Embedder
) -> None:
    a, b = make_settings(corpus), make_settings(corpus)
    Index(a, embedder=embedder).ingest()
    Index(b, embedder=embedder).ingest()
    assert chunk_ids(a) == chunk_ids(b)
    assert Index(a, embedder=embedder).sources() == Index(b, embedder=embedder).sources()


def test_collections_and_data_dirs_do_not_interfere(
    tmp_path: Path, make_settings: MakeSettings, embedder: Embedder
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "a.txt").write_text("Alpha\n\n" + sentences("penguin", 10))
    (two / "b.txt").write_text("Beta\n\n" + sentences("camel", 10))
    first = make_settings(one, collection="first")
    second = first.model_copy(update={"corpus_dir": two, "collection": "second"})
    Index(first, embedder=embedder).ingest()
    Index(second, embedder=embedder).ingest()
    assert [s.source for s in Index(first, embedder=embedder).sources()] == ["a.txt"]
    assert [s.source for s in Index(second, embedder=embedder).sources()] == ["b.txt"]
    assert {h.chunk.source for h in Index(first, embedder=embedder).search("camel", 5)} == {"a.txt"}


def test_missing_corpus_is_a_corpus_error(make_settings: MakeSettings, tmp_path: Path) -> None:
    idx = Index(make_settings(tmp_path / "nope"))
    with pytest.raises(CorpusError, match="does not exist"):
        idx.ingest()


def make_pdf(path: Path, pages: list[str], title: str | None = None) -> None:
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    pdf.output(str(path))


def test_formats_titles_and_pdf_pages(
    tmp_path: Path, make_settings: MakeSettings, embedder: Embedder
) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    make_pdf(
        root / "report.pdf",
        [sentences("apple", 30), sentences("orchard", 30)],
        title="Fruit Report",
    )
    d = docx.Document()
    d.add_paragraph("Harbour Handbook")
    d.add_paragraph(sentences("harbour", 12))
    d.save(str(root / "handbook.docx"))
    (root / "page.html").write_text(
        "<html><head><title>Desert Page</title><style>p{}</style></head><body><h1>Head</h1>"
        f"<p>{sentences('desert', 8)}</p><script>var x = 1;</script></body></html>"
    )
    (root / "plain.txt").write_text("\n\n  Plain Title  \nbody " + sentences("river", 5))

    idx = Index(make_settings(root), embedder=embedder)
    report = idx.ingest()
    assert not report.skipped
    titles = {s.source: s.title for s in idx.sources()}
    assert titles == {
        "report.pdf": "Fruit Report",
        "handbook.docx": "Harbour Handbook",
        "page.html": "Desert Page",
        "plain.txt": "Plain Title",
    }
    pages = {s.source: s.pages for s in idx.sources()}
    assert pages["report.pdf"] == 2 and pages["plain.txt"] is None
    text = idx.document_text("page.html")
    assert "var x" not in text and "desert report number 7" in text

    orchard = idx.search("orchard report", 3)[0].chunk
    apple = idx.search("apple report", 3)[0].chunk
    assert (orchard.source, orchard.page) == ("report.pdf", 2)
    assert (apple.source, apple.page) == ("report.pdf", 1)
    pdf_text = idx.document_text("report.pdf")
    assert pdf_text[orchard.start : orchard.end] == orchard.text
    assert idx.search("harbour report", 1)[0].chunk.source == "handbook.docx"


def test_bad_inputs_are_skipped_with_a_reason(
    tmp_path: Path, make_settings: MakeSettings, embedder: Embedder
) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    (root / "good.txt").write_text("Good\n\n" + sentences("meadow", 10))
    (root / "corrupt.pdf").write_bytes(b"%PDF-1.4\n this is not really a pdf \x00\xff")
    (root / "corrupt.docx").write_bytes(b"PK\x03\x04 broken zip")
    (root / "empty.txt").write_bytes(b"")
    (root / "blank.md").write_text("  \n\n \t")
    (root / "binary.txt").write_bytes(bytes(range(256)) * 10)
    (root / "big.txt").write_text("x " * 3000)
    (root / "dangling.txt").symlink_to(root / "does-not-exist.txt")
    (root / "folder.txt").mkdir()
    (root / "image.png").write_bytes(b"\x89PNG\r\n")
    (root / "latin1.txt").write_bytes("Café crème\n\nNaïve façade, €5 “quoted”.".encode("cp1252"))
    (root / ".hidden.txt").write_text("hidden secret words")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD.txt").write_text("hidden too")
    (root / "vanishing.txt").write_text("Soon gone\n\n" + sentences("ghost", 3))

    def progress(done: int, total: int) -> None:
        # Files go in sorted order; remove one between listing and reading.
        if done == 1:
            (root / "vanishing.txt").unlink()

    idx = Index(make_settings(root, max_file_bytes=4000), embedder=embedder)
    report = idx.ingest(progress=progress)
    assert sorted(report.added) == ["good.txt", "latin1.txt"]
    reasons = report.skipped
    assert set(reasons) == {
        "corrupt.pdf", "corrupt.docx", "empty.txt", "blank.md", "binary.txt", "big.txt",
        "dangling.txt", "folder.txt", "image.png", "vanishing.txt",
    }  # fmt: skip
    assert "corrupt PDF" in reasons["corrupt.pdf"]
    assert "corrupt DOCX" in reasons["corrupt.docx"]
    assert "empty" in reasons["empty.txt"] and "empty" in reasons["blank.md"]
    assert "binary" in reasons["binary.txt"]
    assert "too large" in reasons["big.txt"]
    assert "unsupported" in reasons["image.png"]
    assert "directory" in reasons["folder.txt"]
    assert "no such file" in reasons["dangling.txt"] and "no such file" in reasons["vanishing.txt"]
    for reason in reasons.values():
        assert "\n" not in reason
    assert idx.document_text("latin1.txt") == "Café crème\n\nNaïve façade, €5 “quoted”."
    assert {s.source for s in idx.sources()} == {"good.txt", "latin1.txt"}
    assert idx.search("facade", 1)[0].chunk.source == "latin1.txt"


def test_file_that_turns_bad_is_removed(
    tmp_path: Path, make_settings: MakeSettings, embedder: Embedder
) -> None:
    root = tmp_path / "c"
    root.mkdir()
    (root / "a.txt").write_text("A\n\n" + sentences("otter", 5))
    (root / "b.txt").write_text("B\n\n" + sentences("badger", 5))
    idx = Index(make_settings(root), embedder=embedder)
    idx.ingest()
    (root / "b.txt").write_bytes(b"")
    report = idx.ingest()
    assert report.removed == ["b.txt"] and "b.txt" in report.skipped
    assert [s.source for s in idx.sources()] == ["a.txt"]


def test_single_file_ingest_adds_without_removing(
    tmp_path: Path, make_settings: MakeSettings, embedder: Embedder
) -> None:
    root = tmp_path / "c"
    root.mkdir()
    (root / "a.txt").write_text("A\n\n" + sentences("otter", 5))
    idx = Index(make_settings(root), embedder=embedder)
    idx.ingest()
    extra = root / "sub"
    extra.mkdir()
    (extra / "new.txt").write_text("New\n\n" + sentences("lynx", 5))
    report = idx.ingest(extra / "new.txt")
    assert report.added == ["sub/new.txt"] and not report.removed
    assert [s.source for s in idx.sources()] == ["a.txt", "sub/new.txt"]


def test_empty_corpus_then_search_returns_nothing(
    tmp_path: Path, make_settings: MakeSettings, embedder: Embedder
) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    idx = Index(make_settings(root), embedder=embedder)
    report = idx.ingest()
    assert report.chunks_total == 0 and idx.count() == 0
    assert idx.search("anything at all", 5) == []


def test_searches_run_while_ingesting(
    corpus: Path, make_settings: MakeSettings, embedder: Embedder
) -> None:
    import threading

    idx = Index(make_settings(corpus), embedder=embedder)
    idx.ingest()
    idx.stamp_interval = 0.0
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher() -> None:
        while not stop.is_set():
            try:
                for h in idx.search("glacier report", 5):
                    assert h.chunk.text
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(3):
            (corpus / f"extra{i}.txt").write_text(f"Extra {i}\n\n" + sentences("glacier", 20 + i))
            idx.ingest()
        idx.remove_source("extra0.txt")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert {"extra1.txt", "extra2.txt"} <= {s.source for s in idx.sources()}


def test_chroma_keyword_backend_is_refused_up_front(make_settings: MakeSettings) -> None:
    from index.errors import ConfigError

    with pytest.raises(ConfigError, match="distributed"):
        Index(make_settings(keyword_backend="chroma"))
