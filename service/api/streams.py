"""Server-sent event streams of an answer: groundqa's own events and OpenAI chunks.

The first event is taken before the response starts (:func:`start`), so a backend that is
down still gets a real status code; a failure after that is reported in the stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from service.api import chat
from service.api.errors import error_body, to_api_error
from service.api.metrics import Metrics
from service.result import StreamEvent

# Keeps idle proxies from closing a stream while a slow model drafts.
PING_S = 15


async def start(open_stream: Callable[[], Iterator[StreamEvent]]) -> Iterator[StreamEvent]:
    """Open the stream and pull its first event in a worker thread; errors raise here."""

    def first() -> Iterator[StreamEvent]:
        events = open_stream()
        head = next(events, None)
        return _chain(head, events)

    return await run_in_threadpool(first)


def _chain(head: StreamEvent | None, rest: Iterator[StreamEvent]) -> Iterator[StreamEvent]:
    if head is not None:
        yield head
    yield from rest


def answer_events(
    events: Iterator[StreamEvent], metrics: Metrics, request_id: str | None
) -> EventSourceResponse:
    """``delta`` events ({"delta": text}), then one ``final`` event carrying the Answer."""

    def sse() -> Iterator[ServerSentEvent]:
        try:
            for event in events:
                if event.type == "delta":
                    yield ServerSentEvent(json.dumps({"delta": event.delta or ""}), event="delta")
                elif event.result is not None:
                    metrics.observe_answer(event.result, "api")
                    yield ServerSentEvent(event.result.model_dump_json(), event="final")
        except Exception as exc:
            err = to_api_error(exc)
            body = json.dumps(error_body(err.type, err.message, request_id))
            yield ServerSentEvent(body, event="error")

    return EventSourceResponse(sse(), ping=PING_S)


def chat_chunks(
    events: Iterator[StreamEvent], metrics: Metrics, completion_id: str, request_id: str | None
) -> EventSourceResponse:
    """OpenAI ``chat.completion.chunk`` events; the last one carries the citations."""
    created = int(time.time())

    def sse() -> Iterator[str]:
        yield json.dumps(chat.chunk(completion_id, created, {"role": "assistant", "content": ""}))
        streamed = ""
        try:
            for event in events:
                if event.type == "delta" and event.delta:
                    streamed += event.delta
                    yield json.dumps(chat.chunk(completion_id, created, {"content": event.delta}))
                elif event.type == "final" and event.result is not None:
                    answer = event.result
                    metrics.observe_answer(answer, "openai")
                    tail = chat.remainder(streamed, answer)
                    if tail:
                        yield json.dumps(chat.chunk(completion_id, created, {"content": tail}))
                    citations = [c.model_dump() for c in answer.citations]
                    yield json.dumps(
                        chat.chunk(
                            completion_id,
                            created,
                            {"citations": citations},
                            finish_reason="stop",
                            citations=citations,
                            abstained=answer.abstained,
                        )
                    )
        except Exception as exc:  # as OpenAI servers do: an error object in the stream
            err = to_api_error(exc)
            yield json.dumps(error_body(err.type, err.message, request_id))
        yield "[DONE]"

    return EventSourceResponse(sse(), ping=PING_S)
