"""The exceptions groundqa raises on purpose.

GroundQAError
 ├── ConfigError         bad settings or arguments (CLI exit 2, HTTP 400/422)
 ├── CorpusError         a corpus path that does not exist or cannot be read
 ├── DocumentError       one document could not be loaded (it is skipped, never fatal)
 ├── IndexUnavailable    the vector store cannot be reached (HTTP 503)
 ├── IndexEmpty          nothing has been ingested yet (HTTP 503)
 ├── NotFound            a collection or document that does not exist (HTTP 404)
 └── ModelUnavailable    an embedding model or LLM endpoint cannot be used (HTTP 503)
"""

from __future__ import annotations


class GroundQAError(Exception):
    """Base class: every error groundqa raises deliberately."""


class ConfigError(GroundQAError):
    pass


class CorpusError(GroundQAError):
    pass


class DocumentError(GroundQAError):
    """A single document was skipped; ``reason`` is one line for the user."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class IndexUnavailable(GroundQAError):
    pass


class IndexEmpty(GroundQAError):
    pass


class NotFound(GroundQAError):
    pass


class ModelUnavailable(GroundQAError):
    pass
