"""The two seams where an LLM can replace the built-in, model-free behaviour."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from service.result import Passage, Turn


class Drafter(Protocol):
    """Writes a draft answer that cites ``[n]`` for ``passages[n - 1]``; yields text deltas.

    The draft is only a proposal: the verifier decides what of it reaches the user.
    """

    def draft(self, question: str, passages: Sequence[Passage]) -> Iterator[str]: ...


class Condenser(Protocol):
    """Turns a follow-up plus chat history into a standalone question for retrieval."""

    def condense(self, question: str, history: Sequence[Turn]) -> str: ...
