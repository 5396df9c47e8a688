"""The document folder behind the index: list, add uploads, delete, reindex.

Shared by the API and the UI so both enforce the same limits. Uploads are written into
``settings.corpus_dir`` under their own (validated) name; a file of the same name there is
replaced, which makes the upload the new version of that document. Names with a directory
part, hidden names and unsupported types are refused, never rewritten.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from index import Index, loaders
from index.errors import DocumentError
from index.loaders import SUFFIXES
from index.types import IngestReport, SourceInfo
from service.api.errors import ApiError
from service.api.security import BadFileName, safe_filename
from service.settings import Settings

_COPY_CHUNK = 1024 * 1024


class Corpus:
    """Changes to the corpus folder and its index, one at a time per process."""

    def __init__(self, settings: Settings, index: Index) -> None:
        self.settings = settings
        self.index = index
        self.root = Path(settings.corpus_dir)
        self._lock = threading.Lock()

    def documents(self) -> list[SourceInfo]:
        return self.index.sources()

    def add(self, uploads: Sequence[tuple[str | None, BinaryIO]]) -> IngestReport:
        """Save ``(file name, stream)`` pairs into the corpus and ingest what changed."""
        if not uploads:
            raise ApiError(400, "no files were uploaded")
        if len(uploads) > self.settings.max_upload_files:
            raise ApiError(413, f"at most {self.settings.max_upload_files} files per upload")
        names = [self._checked_name(name) for name, _ in uploads]
        if len({n.casefold() for n in names}) != len(names):
            raise ApiError(400, "the same file name appears twice in one upload")
        self.root.mkdir(parents=True, exist_ok=True)
        root = self.root.resolve()
        targets = [self._target(root, name) for name in names]
        staged: list[tuple[Path, Path]] = []
        try:
            for (_, stream), target in zip(uploads, targets, strict=True):
                staged.append((self._stage(root, stream, target.name), target))
            # All or nothing: a file the loader cannot read never enters the corpus.
            for tmp, target in staged:
                try:
                    loaders.load(tmp, target.name, self.settings.max_file_bytes)
                except DocumentError as exc:
                    raise ApiError(422, str(exc), type="document_error") from None
            with self._lock:
                for tmp, target in staged:
                    os.replace(tmp, target)
                staged.clear()
                # One file at a time: only what was uploaded is (re)ingested, nothing else removed.
                return merge([self.index.ingest(target) for target in targets])
        finally:
            for tmp, _ in staged:
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def remove(self, doc_id: str) -> SourceInfo:
        """Delete a document's file and its chunks; ApiError 404 if the id is unknown."""
        with self._lock:
            info = next((s for s in self.index.sources() if s.id == doc_id), None)
            if info is None:
                raise ApiError(404, f"no document with id {doc_id!r}")
            root = self.root.resolve()
            path = (root / info.source).resolve()
            # The source name comes from the index, which another process may have written.
            if path.is_relative_to(root) and path != root and path.is_file():
                path.unlink()
            self.index.remove_source(info.source)
            return info

    def reindex(self) -> IngestReport:
        with self._lock:
            return self.index.ingest()

    def _checked_name(self, name: str | None) -> str:
        try:
            name = safe_filename(name)
        except BadFileName as exc:
            raise ApiError(400, str(exc), type="invalid_filename") from None
        suffix = Path(name).suffix.lower()
        if suffix not in SUFFIXES:
            allowed = ", ".join(sorted(SUFFIXES))
            raise ApiError(
                415, f"{suffix or 'files without an extension'} not supported; use {allowed}"
            )
        return name

    @staticmethod
    def _target(root: Path, name: str) -> Path:
        target = root / name
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise ApiError(
                400,
                f"{name} exists in the corpus and is not a regular file",
                type="invalid_filename",
            )
        if target.resolve().parent != root:
            raise ApiError(
                400, f"{name} does not resolve inside the corpus", type="invalid_filename"
            )
        return target

    def _stage(self, root: Path, stream: BinaryIO, name: str) -> Path:
        # Hidden temp name in the same folder: the loader skips it and os.replace stays atomic.
        fd, tmp_name = tempfile.mkstemp(prefix=".upload-", suffix=".part", dir=root)
        tmp = Path(tmp_name)
        limit = self.settings.max_upload_bytes
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_COPY_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise ApiError(413, f"{name} is larger than {limit} bytes")
                    out.write(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp


def merge(reports: Sequence[IngestReport]) -> IngestReport:
    """One report for several single-file ingests."""
    out = IngestReport()
    for r in reports:
        out.added += r.added
        out.updated += r.updated
        out.unchanged += r.unchanged
        out.removed += r.removed
        out.skipped.update(r.skipped)
        out.chunks_embedded += r.chunks_embedded
        out.chunks_total = r.chunks_total
        out.seconds += r.seconds
        out.rebuilt = out.rebuilt or r.rebuilt
    return out
