"""The answer contract shared by the CLI, the API, the UI and the evals."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Mode = Literal["extractive", "generative"]

# The one sentence every abstention answers with (documented in README.md).
ABSTAIN_ANSWER = "The sources don't contain an answer to that."


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class Citation(BaseModel):
    """A quoted span that supports part of the answer; ``quote == document[start:end]``."""

    n: int = Field(ge=1, description="The number used as [n] in the answer text.")
    source: str
    title: str
    chunk_id: str
    start: int = Field(ge=0, description="Character offset of the quote in the source document.")
    end: int = Field(ge=0)
    quote: str
    support: float = Field(
        ge=0.0, le=1.0, description="How strongly the quote supports the sentence(s) citing it."
    )
    page: int | None = None


class Passage(BaseModel):
    """A retrieved passage, shown as related context when it is not cited as support."""

    source: str
    title: str
    chunk_id: str
    start: int
    end: int
    text: str
    score: float
    page: int | None = None


class SentenceCheck(BaseModel):
    """The verifier's verdict on one sentence of the draft answer."""

    text: str
    citations: list[int]
    support: float
    action: Literal["kept", "repaired", "removed"]
    reason: str | None = None


class Answer(BaseModel):
    question: str
    standalone_question: str
    answer: str
    short_answer: str | None = None
    abstained: bool
    reason: str | None = None
    confidence: float = Field(ge=0.0, le=1.0)
    mode: Mode
    citations: list[Citation] = Field(default_factory=list)
    related: list[Passage] = Field(default_factory=list)
    sentences: list[SentenceCheck] = Field(default_factory=list)
    timings: dict[str, float] = Field(
        default_factory=dict, description="Milliseconds per stage, and 'total'."
    )
    collection: str | None = Field(default=None, description="The collection that was asked.")
    scope: list[str] | None = Field(
        default=None,
        description="The document sources the question was limited to (None: the whole "
        "collection); an abstention then means these sources hold no answer.",
    )


class StreamEvent(BaseModel):
    """One event of a streamed answer: token deltas, then exactly one ``final``."""

    type: Literal["delta", "final"]
    delta: str | None = None
    result: Answer | None = None
