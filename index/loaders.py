"""Turning files into plain text with a title, a content hash and (for PDFs) page offsets.

Each loader returns the exact text that chunk offsets refer to. For ``.txt``/``.md`` that is the
decoded file with universal newlines, i.e. what ``open(path).read()`` returns for a UTF-8 file.
"""

from __future__ import annotations

import bisect
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from index.errors import CorpusError, DocumentError

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".text", ".rst"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}


@dataclass(frozen=True, slots=True)
class Document:
    source: str  # relative to the corpus root, forward slashes
    text: str
    title: str
    doc_hash: str  # sha256 of the file bytes
    page_starts: tuple[int, ...] | None = None  # PDF: offset in ``text`` where each page begins

    def page_at(self, offset: int) -> int | None:
        """1-based page number holding ``offset`` (None for documents without pages)."""
        if not self.page_starts:
            return None
        return bisect.bisect_right(self.page_starts, offset)

    @property
    def pages(self) -> int | None:
        return len(self.page_starts) if self.page_starts is not None else None


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_HEADLINE_WORDS = (3, 25)


def _first_line(text: str) -> str:
    """The document's title: the line that reads like its headline.

    Scraped pages often open with a caption or a menu item ("Logo Wide", "Menu"), so:
    a Markdown heading when the opening lines have one; else an opening line that recurs
    later as the heading of the body; else the first line, unless it is a short fragment
    followed by a headline-shaped line (3–25 words, no closing full stop).
    """
    lines = [ln.strip().lstrip("\ufeff").strip() for ln in text.splitlines()]
    opening = [ln for ln in lines if ln][:8]
    if not opening:
        return ""
    for line in opening:
        if line.startswith("#") and line.lstrip("#").strip():
            return line.lstrip("#").strip()[:200]

    def headline(line: str) -> bool:
        lo, hi = _HEADLINE_WORDS
        return lo <= len(line.split()) <= hi and not line.endswith((".", "!", "?", ":", ";"))

    counts: dict[str, int] = {}
    for line in lines:
        if line:
            counts[line] = counts.get(line, 0) + 1
    for line in opening:
        if counts[line] > 1 and headline(line):
            return line[:200]
    first = opening[0]
    if len(first.split()) < _HEADLINE_WORDS[0]:
        for line in opening[1:3]:
            if headline(line):
                return line[:200]
            if len(line.split()) >= _HEADLINE_WORDS[0]:
                break  # body text: the short first line was the title after all
    return first[:200]


def one_line(reason: str, limit: int = 300) -> str:
    """A reason squeezed onto one line, short enough for a CLI summary."""
    flat = " ".join(reason.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def decode_text(data: bytes, path: str) -> str:
    """UTF-8 when it is, otherwise the encoding charset-normalizer finds; binary is refused."""
    if b"\x00" in data[:8192]:
        raise DocumentError(path, "binary content (NUL bytes), not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        raise DocumentError(path, "binary content: no text encoding fits")
    # Short Western texts fit several single-byte code pages about equally well; Windows-1252
    # is by far the most common of them, so it wins a near tie.
    least = min(m.chaos for m in matches)
    for m in matches:
        if m.encoding == "cp1252" and m.chaos <= least + 0.01:
            return str(m)
    return str(matches[0])


def _load_text(data: bytes, path: str) -> tuple[str, str, tuple[int, ...] | None]:
    text = _newlines(decode_text(data, path))
    return text, _first_line(text), None


def _load_html(data: bytes, path: str) -> tuple[str, str, tuple[int, ...] | None]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data, path), "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    h1 = soup.find("h1")
    if not title and h1 is not None:
        title = h1.get_text(" ", strip=True)
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    text = "\n".join(line for line in lines if line)
    return text, title[:200] or _first_line(text), None


def _load_pdf(data: bytes, path: str) -> tuple[str, str, tuple[int, ...] | None]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(path, "encrypted PDF")
        pages = [_newlines(page.extract_text() or "").strip() for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except DocumentError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise DocumentError(path, f"corrupt PDF ({type(exc).__name__}: {exc})") from exc
    starts: list[int] = []
    parts: list[str] = []
    offset = 0
    for page in pages:
        starts.append(offset)
        parts.append(page)
        offset += len(page) + 2  # the "\n\n" joining pages
    text = "\n\n".join(parts)
    return text, str(meta_title).strip()[:200] or _first_line(text), tuple(starts)


def _load_docx(data: bytes, path: str) -> tuple[str, str, tuple[int, ...] | None]:
    import docx

    try:
        doc = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises zipfile/KeyError/lxml errors on corrupt files
        raise DocumentError(path, f"corrupt DOCX ({type(exc).__name__}: {exc})") from exc
    blocks = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        for row in table.rows:
            blocks.append(" | ".join(cell.text.strip() for cell in row.cells))
    text = _newlines("\n".join(blocks)).strip()
    title = (doc.core_properties.title or "").strip()
    return text, title[:200] or _first_line(text), None


_LOADERS: dict[str, Callable[[bytes, str], tuple[str, str, tuple[int, ...] | None]]] = {
    **dict.fromkeys(TEXT_SUFFIXES, _load_text),
    **dict.fromkeys(HTML_SUFFIXES, _load_html),
    ".pdf": _load_pdf,
    ".docx": _load_docx,
}


def read_bytes(path: Path, source: str, max_bytes: int) -> bytes:
    """The file's bytes, or DocumentError naming why it cannot be read."""
    try:
        if path.is_dir():
            raise DocumentError(source, "is a directory, not a document")
        if not path.exists():
            raise DocumentError(
                source, "no such file (removed while ingesting, or a dangling link)"
            )
        if not path.is_file():
            raise DocumentError(source, "not a regular file")
        size = path.stat().st_size
        if size > max_bytes:
            raise DocumentError(source, f"too large ({size} bytes > max_file_bytes {max_bytes})")
        with path.open("rb") as f:
            return f.read(max_bytes + 1)
    except OSError as exc:
        raise DocumentError(source, f"unreadable ({exc.strerror or exc})") from exc


def parse(data: bytes, source: str, doc_hash: str | None = None) -> Document:
    """Load a file's bytes as a Document; DocumentError when it has no usable text."""
    suffix = Path(source).suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        raise DocumentError(source, f"unsupported file type {suffix or '(none)'}")
    if not data.strip():
        raise DocumentError(source, "empty file")
    try:
        text, title, page_starts = loader(data, source)
    except DocumentError as exc:
        raise DocumentError(source, one_line(exc.reason)) from exc
    except Exception as exc:
        # Parsers raise all sorts on malformed input; one bad file must not stop an ingest.
        raise DocumentError(
            source, one_line(f"cannot parse ({type(exc).__name__}: {exc})")
        ) from exc
    if not text.strip():
        raise DocumentError(source, "no extractable text")
    return Document(
        source=source,
        text=text,
        title=title or Path(source).stem,
        doc_hash=doc_hash or file_hash(data),
        page_starts=page_starts,
    )


def load(path: Path, source: str, max_bytes: int) -> Document:
    data = read_bytes(path, source, max_bytes)
    return parse(data, source)


def source_name(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def walk(root: Path) -> Iterator[tuple[str, Path]]:
    """``(source, path)`` for every non-hidden file under ``root`` (or ``root`` itself), sorted."""
    if not root.exists() and not root.is_symlink():
        raise CorpusError(f"corpus path {root} does not exist")
    if root.is_file():
        yield root.name, root
        return
    if not root.is_dir():
        raise CorpusError(f"corpus path {root} is not a file or directory")
    found: list[tuple[str, Path]] = []
    try:
        for path in root.rglob("*"):
            rel = path.relative_to(root)
            if any(part.startswith(".") for part in rel.parts):
                continue
            if path.is_dir():
                # A directory that looks like a document is reported rather than silently ignored.
                if path.suffix.lower() in SUFFIXES:
                    found.append((rel.as_posix(), path))
                continue
            found.append((rel.as_posix(), path))
    except OSError as exc:
        raise CorpusError(f"cannot list corpus path {root}: {exc}") from exc
    yield from sorted(found)
