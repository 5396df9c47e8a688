"""Request and response bodies of the HTTP API (the Answer itself is service.result.Answer)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.result import Citation, Mode, Turn


class ScopeFilter(BaseModel):
    """Documents a question is limited to: any named here, and any the glob matches."""

    model_config = ConfigDict(extra="forbid")

    documents: list[str] = Field(
        default_factory=list, max_length=1000, description="Source paths or document ids."
    )
    glob: str | None = Field(
        default=None, max_length=500, description="fnmatch pattern over source paths and titles."
    )


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, description="Limited to GROUNDQA_MAX_QUESTION_CHARS.")
    history: list[Turn] = Field(default_factory=list, description="Earlier turns, oldest first.")
    mode: Mode | None = None
    top_k: int | None = Field(default=None, ge=1, le=50)
    collection: str | None = Field(default=None, description="Default: the server's default.")
    filter: ScopeFilter | None = None


class Document(BaseModel):
    id: str
    source: str
    title: str
    chunks: int
    hash: str
    pages: int | None = None


class DocumentList(BaseModel):
    documents: list[Document]
    total_chunks: int


class Deleted(BaseModel):
    id: str
    source: str
    chunks_removed: int


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str]


# OpenAI-compatible chat completions: only the fields groundqa uses or returns.


class ChatMessage(BaseModel):
    # Clients send more (name, tool calls, images); those are ignored, not refused.
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = "groundqa"
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    # groundqa extensions; the sampling parameters of OpenAI clients are accepted and ignored.
    mode: Mode | None = None
    top_k: int | None = Field(default=None, ge=1, le=50)
    # The collection: this field, else ``model`` when it is not "groundqa" (so a client that
    # only lets users pick a model can pick a collection), else the default.
    collection: str | None = None
    filter: ScopeFilter | None = None


class ChatResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    citations: list[Citation] = Field(default_factory=list)


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatResponseMessage
    finish_reason: Literal["stop"] = "stop"


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage = Field(default_factory=Usage)
    abstained: bool = False


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "groundqa"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
