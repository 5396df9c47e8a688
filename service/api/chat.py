"""Translation between OpenAI chat completions and groundqa questions and answers."""

from __future__ import annotations

import time
from typing import Any

from service.api.errors import ApiError
from service.api.schemas import (
    ChatChoice,
    ChatCompletion,
    ChatRequest,
    ChatResponseMessage,
)
from service.result import Answer, Citation, Turn

MODEL_ID = "groundqa"
SOURCES_HEADING = "\n\nSources:\n"


def question_and_history(request: ChatRequest, max_turns: int) -> tuple[str, list[Turn]]:
    """The last user message is the question; earlier user/assistant messages are history.

    Chat clients resend the whole conversation, so history beyond ``max_turns`` is dropped
    (oldest first) rather than refused, and the source lists groundqa appended are removed.
    """
    *earlier, last = request.messages
    question = last.text().strip()
    if last.role != "user" or not question:
        raise ApiError(422, "the last message must be a non-empty user message")
    history: list[Turn] = []
    for message in earlier:
        if message.role in ("user", "assistant"):
            content = message.text().split(SOURCES_HEADING, 1)[0].strip()
            if content:
                history.append(Turn(role=message.role, content=content))  # type: ignore[arg-type]
    return question, history[-max_turns:] if max_turns else []


def collection_of(request: ChatRequest) -> str | None:
    """The collection a chat request asks: ``collection``, else a ``model`` other than
    "groundqa" (clients such as AnythingLLM map workspaces onto models), else None."""
    if request.collection:
        return request.collection
    if request.model and request.model != MODEL_ID:
        return request.model
    return None


def source_line(c: Citation) -> str:
    page = f", page {c.page}" if c.page is not None else ""
    quote = " ".join(c.quote.split())
    return f"[{c.n}] {c.title} — {c.source}{page}, chars {c.start}–{c.end}: “{quote}”"


def sources_text(answer: Answer) -> str:
    """The numbered source list appended to the answer text (empty when nothing is cited)."""
    if not answer.citations:
        return ""
    return SOURCES_HEADING + "\n".join(
        source_line(c) for c in sorted(answer.citations, key=lambda c: c.n)
    )


def completion(answer: Answer, completion_id: str, model: str = MODEL_ID) -> ChatCompletion:
    message = ChatResponseMessage(
        content=answer.answer + sources_text(answer), citations=answer.citations
    )
    return ChatCompletion(
        id=completion_id,
        created=int(time.time()),
        model=model,
        choices=[ChatChoice(message=message)],
        abstained=answer.abstained,
    )


def chunk(
    completion_id: str,
    created: int,
    delta: dict[str, Any],
    *,
    model: str = MODEL_ID,
    finish_reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        **extra,
    }


def remainder(streamed: str, answer: Answer) -> str:
    """Text still to send so the client ends up with the verified answer and its sources.

    Normally the streamed deltas are a prefix of the final answer. If verification changed
    the draft after it was streamed, the verified answer follows, marked as such, because
    a chat stream cannot take text back.
    """
    final = answer.answer
    rest = final[len(streamed) :] if final.startswith(streamed) else "\n\nVerified answer: " + final
    return rest + sources_text(answer)
