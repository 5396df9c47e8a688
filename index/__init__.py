"""Loading, chunking, embedding and hybrid retrieval over a document corpus."""

from index.core import Index, source_id

__all__ = ["Index", "source_id"]
