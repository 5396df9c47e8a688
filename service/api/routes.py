"""The HTTP routes: answers, OpenAI-compatible chat, documents, health and metrics."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from index.types import IngestReport
from service.api import chat, streams
from service.api.collections import Target
from service.api.corpus import Corpus
from service.api.deps import (
    AskDep,
    Caller,
    CatalogDep,
    MetricsDep,
    QADep,
    ServicesDep,
    SettingsDep,
    check_question,
    rate_limit,
)
from service.api.errors import error_body, request_id_of, to_api_error
from service.api.metrics import CONTENT_TYPE_LATEST
from service.api.schemas import (
    AskRequest,
    ChatCompletion,
    ChatRequest,
    Deleted,
    Document,
    DocumentList,
    ModelCard,
    ModelList,
    Readiness,
)
from service.result import Answer

# Every route here but the probes needs a valid key (when keys are set) and a rate-limit token.
api = APIRouter(dependencies=[Depends(rate_limit)])
probes = APIRouter(tags=["health"])

_UPLOAD_OVERHEAD = 64 * 1024


def upload_body_limit(max_upload_bytes: int, max_upload_files: int) -> int:
    return max_upload_bytes * max_upload_files + _UPLOAD_OVERHEAD


# --- answers -----------------------------------------------------------------------------


def asked(body: AskDep, catalog: CatalogDep, principal: Caller) -> Target:
    """The collection and scope a question is asked against (404 outside the caller's set)."""
    return catalog.target(principal, body.collection, body.filter)


TargetDep = Annotated[Target, Depends(asked)]


def scoped_corpus(catalog: CatalogDep, principal: Caller, collection: str | None = None) -> Corpus:
    """The documents of the ``?collection=`` asked for (default: the default collection)."""
    return catalog.corpus(principal, collection)


CorpusDep = Annotated[Corpus, Depends(scoped_corpus)]


def _asking(body: AskRequest, t: Target) -> dict[str, Any]:
    return {"mode": body.mode, "top_k": body.top_k, "index": t.index, "sources": t.sources}


@api.post("/v1/ask", response_model=Answer, tags=["answers"])
def ask(body: AskDep, target: TargetDep, qa: QADep, metrics: MetricsDep) -> Answer:
    """Answer a question from the corpus, with citations, or abstain."""
    answer = qa.ask(body.question, body.history, **_asking(body, target))
    metrics.observe_answer(answer, "api")
    return answer


@api.post(
    "/v1/ask/stream",
    tags=["answers"],
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "deltas, then final"}},
)
async def ask_stream(
    body: AskDep, target: TargetDep, qa: QADep, metrics: MetricsDep, request: Request
) -> EventSourceResponse:
    """Server-sent events: ``delta`` events ({"delta": text}), then one ``final`` (the Answer)."""
    events = await streams.start(
        lambda: qa.stream(body.question, body.history, **_asking(body, target))
    )
    return streams.answer_events(events, metrics, request_id_of(request))


# --- OpenAI-compatible chat ----------------------------------------------------------------


@api.get("/v1/models", response_model=ModelList, tags=["openai"])
def models(catalog: CatalogDep, principal: Caller) -> ModelList:
    """The default collection as model "groundqa", and every collection the caller may ask."""
    names = [n for n in catalog.visible(principal) if n != chat.MODEL_ID]
    return ModelList(data=[ModelCard(id=chat.MODEL_ID), *(ModelCard(id=n) for n in names)])


@api.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    tags=["openai"],
    responses={200: {"content": {"text/event-stream": {}}, "description": "when stream=true"}},
)
async def chat_completions(
    body: ChatRequest,
    qa: QADep,
    settings: SettingsDep,
    metrics: MetricsDep,
    request: Request,
    catalog: CatalogDep,
    principal: Caller,
) -> Any:
    """OpenAI chat completions; citations ride on ``message.citations`` and the final chunk."""
    question, history = chat.question_and_history(body, settings.max_history_turns)
    check_question(question, 0, settings)
    completion_id = f"chatcmpl-{request_id_of(request) or uuid.uuid4().hex}"
    t = await run_in_threadpool(catalog.target, principal, chat.collection_of(body), body.filter)
    asking: dict[str, Any] = {
        "mode": body.mode,
        "top_k": body.top_k,
        "index": t.index,
        "sources": t.sources,
    }
    if not body.stream:
        answer = await run_in_threadpool(qa.ask, question, history, **asking)
        metrics.observe_answer(answer, "openai")
        return chat.completion(answer, completion_id)

    events = await streams.start(lambda: qa.stream(question, history, **asking))
    return streams.chat_chunks(events, metrics, completion_id, request_id_of(request))


# --- documents ---------------------------------------------------------------------------


@api.get("/v1/documents", response_model=DocumentList, tags=["documents"])
def list_documents(corpus: CorpusDep) -> DocumentList:
    infos = corpus.documents()
    return DocumentList(
        documents=[
            Document(
                id=s.id,
                source=s.source,
                title=s.title,
                chunks=s.chunks,
                hash=s.doc_hash,
                pages=s.pages,
            )
            for s in infos
        ],
        total_chunks=sum(s.chunks for s in infos),
    )


@api.post("/v1/documents", response_model=IngestReport, tags=["documents"])
def upload_documents(
    corpus: CorpusDep,
    files: Annotated[list[UploadFile], File(description="One or more documents.")],
) -> IngestReport:
    """Save the files into the corpus folder (same name = new version) and ingest what changed."""
    return corpus.add([(f.filename, f.file) for f in files])


@api.delete("/v1/documents/{doc_id}", response_model=Deleted, tags=["documents"])
def delete_document(doc_id: str, corpus: CorpusDep) -> Deleted:
    info = corpus.remove(doc_id)
    return Deleted(id=info.id, source=info.source, chunks_removed=info.chunks)


@api.post("/v1/reindex", response_model=IngestReport, tags=["documents"])
def reindex(corpus: CorpusDep) -> IngestReport:
    """Ingest the corpus folder again: changed files are re-embedded, vanished ones removed."""
    return corpus.reindex()


# --- health, metrics, docs --------------------------------------------------------------


@probes.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive (no dependency is checked)."""
    return {"status": "ok"}


@probes.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(services: ServicesDep, request: Request) -> Response:
    """Ready to answer: models loaded, Chroma reachable, index non-empty."""
    checks: dict[str, str] = {}
    failed: list[str] = []
    warm = services.warmup
    if warm.enabled and not warm.run():
        failed.append(f"model: {warm.error}")
        checks["model"] = "not loaded"
    else:
        checks["model"] = "loaded" if warm.enabled else "loads on first request"
    index = services.qa.index
    try:
        index.ping()
        checks["chroma"] = "reachable"
        count = index.count()
        checks["index"] = f"{count} chunks"
        if count == 0:
            failed.append("index: empty (ingest documents first)")
    except Exception as exc:
        checks["chroma"] = "unreachable"
        failed.append(f"chroma: {to_api_error(exc).message}")
    if not failed:
        return JSONResponse({"status": "ready", "checks": checks})
    body = {
        "status": "not ready",
        "checks": checks,
        **error_body("not_ready", "; ".join(failed), request_id_of(request)),
    }
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


@api.get("/metrics", tags=["health"], response_class=Response)
def metrics(services: ServicesDep) -> Response:
    """Prometheus text format."""
    m = services.metrics
    gate = services.qa.admission
    m.answers_running.set(gate.running)
    m.answers_waiting.set(gate.waiting)
    m.answers_refused.set(gate.rejected)
    try:
        infos = services.qa.index.sources()
        m.index_documents.set(len(infos))
        m.index_chunks.set(sum(s.chunks for s in infos))
    except Exception:  # a scrape must not fail because Chroma is down; gauges keep their value
        pass
    return Response(m.render(), media_type=CONTENT_TYPE_LATEST)


@api.get("/openapi.json", include_in_schema=False)
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@api.get("/docs", include_in_schema=False)
def docs() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="groundqa API")
