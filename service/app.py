"""The web app: the HTTP API and the Gradio UI in one process (``groundqa serve``)."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from service.api import errors
from service.api.collection_routes import router as collection_routes
from service.api.corpus import Corpus
from service.api.deps import Services, Warmup
from service.api.logs import RequestContextMiddleware, configure_logging
from service.api.metrics import Metrics
from service.api.routes import api, probes, rate_limit, upload_body_limit
from service.api.security import BodySizeLimit, KeyChecker, RateLimiter
from service.settings import Settings

if TYPE_CHECKING:
    from service.qa import QA

log = logging.getLogger("groundqa.app")

UI_PATH = "/ui"


def create_app(settings: Settings, qa: QA | None = None, *, warmup: bool = True) -> FastAPI:
    """Build the app; nothing is loaded until the lifespan warms the models up (if ``warmup``).

    A failed warm-up (Chroma or a model unavailable) does not stop the app: it starts, answers
    503 on /readyz and retries the warm-up on each readiness check.
    """
    if qa is None:
        from service.qa import QA

        qa = QA(settings)
    services = Services(
        settings=settings,
        qa=qa,
        corpus=Corpus(settings, qa.index),
        metrics=Metrics(),
        keys=KeyChecker(settings.api_keys),
        limiter=RateLimiter(settings.rate_limit_per_minute),
        warmup=Warmup(qa, warmup),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Sync routes run in anyio's worker threads (40 by default). Every answer waiting for
        # an admission slot holds one, so the pool must outnumber the admission queue, or
        # requests would wait for a thread without bound before the queue could refuse them.
        import anyio.to_thread

        limiter = anyio.to_thread.current_default_thread_limiter()
        wanted = settings.max_concurrent_answers + settings.max_queued_answers + 16
        limiter.total_tokens = max(int(limiter.total_tokens), wanted)
        if warmup:
            await run_in_threadpool(services.warmup.run)
        yield

    app = FastAPI(
        title="groundqa",
        summary="Answers only from its documents, citing the exact passages, or abstains.",
        version="0.1.0",
        lifespan=lifespan,
        # Served by routes that require the API key like every other route.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.services = services
    errors.install(app)
    app.include_router(probes)
    app.include_router(api)
    app.include_router(collection_routes, dependencies=[Depends(rate_limit)])
    upload_limit = upload_body_limit(settings.max_upload_bytes, settings.max_upload_files)
    if settings.ui:
        _mount_ui(app, services)

    def limit_for(path: str) -> int:
        # Uploads (API and UI) may be larger than any other request.
        if path == "/v1/documents" or path.startswith(UI_PATH + "/"):
            return upload_limit
        return settings.max_body_bytes

    app.add_middleware(BodySizeLimit, limit_for=limit_for)
    app.add_middleware(RequestContextMiddleware, observe=services.metrics.observe_request)
    return app


def _mount_ui(app: FastAPI, services: Services) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from service import ui

    blocks = ui.build(services)
    keys = services.keys
    logins = services.extra["ui_logins"]
    assert isinstance(logins, ui.Logins)
    gr.mount_gradio_app(
        app,
        blocks,
        path=UI_PATH,
        # With API keys set, the UI asks for one as its password: it is no way around the keys.
        auth=logins.check if keys.enabled else None,
        auth_message="Sign in with any user name and an API key as the password."
        if keys.enabled
        else None,
        footer_links=[],
        max_file_size=services.settings.max_upload_bytes,
        head=ui.HEAD,
        css=ui.CSS,
        theme=ui.theme(),
        run_history=False,
        ssr_mode=False,
    )


def serve(settings: Settings) -> None:
    """Run the API and UI on ``settings.host:settings.port`` until interrupted."""
    import uvicorn

    from index.malloc import limit_arenas

    configure_logging(settings.log_level)
    # Before any thread starts: glibc would otherwise give each of the ~80 request threads an
    # arena (up to 8 per core) that keeps the high-water mark of the forward passes it ran.
    limit_arenas(max(2, os.cpu_count() or 2))
    app = create_app(settings)
    log.info("serving", extra={"host": settings.host, "port": settings.port, "ui": settings.ui})
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
