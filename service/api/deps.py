"""What routes receive: the per-app services, the caller, and validated questions."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from index.errors import GroundQAError
from service.api.collections import Catalog
from service.api.corpus import Corpus
from service.api.errors import ApiError
from service.api.metrics import Metrics
from service.api.schemas import AskRequest
from service.api.security import KeyChecker, RateLimiter
from service.qa import QA
from service.settings import Settings

log = logging.getLogger("groundqa.api")


class Warmup:
    """Whether the models are loaded; a failed warm-up is retried by the next readiness check."""

    def __init__(self, qa: QA, enabled: bool) -> None:
        self.qa = qa
        self.enabled = enabled
        self.done = False
        self.error: str | None = None
        self._lock = threading.Lock()

    def run(self) -> bool:
        with self._lock:
            if self.done:
                return True
            try:
                self.qa.warmup()
            except GroundQAError as exc:
                self.error = str(exc) or type(exc).__name__
                log.warning("warm-up failed: %s", self.error)
                return False
            self.done, self.error = True, None
            return True


@dataclass
class Services:
    """Everything one app instance serves with; kept on ``app.state.services``."""

    settings: Settings
    qa: QA
    corpus: Corpus
    metrics: Metrics
    keys: KeyChecker
    limiter: RateLimiter
    warmup: Warmup
    extra: dict[str, object] = field(default_factory=dict)
    catalog: Catalog | None = None  # built from settings and qa.index when not given

    def __post_init__(self) -> None:
        if self.catalog is None:
            self.catalog = Catalog(self.settings, self.qa.index, self.corpus)


def get_services(request: Request) -> Services:
    services = request.app.state.services
    assert isinstance(services, Services)
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_settings(services: ServicesDep) -> Settings:
    return services.settings


def get_qa(services: ServicesDep) -> QA:
    return services.qa


def get_corpus(services: ServicesDep) -> Corpus:
    return services.corpus


def get_metrics(services: ServicesDep) -> Metrics:
    return services.metrics


def get_catalog(services: ServicesDep) -> Catalog:
    assert services.catalog is not None
    return services.catalog


SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
QADep = Annotated[QA, Depends(get_qa)]
CorpusDep = Annotated[Corpus, Depends(get_corpus)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "missing or invalid API key",
        type="unauthorized",
        headers={"WWW-Authenticate": "Bearer"},
    )


def authenticate(request: Request, services: ServicesDep) -> str:
    """The caller: an API key's name when keys are configured, else the client address."""
    if services.keys.enabled:
        principal = services.keys.check_authorization(request.headers.get("authorization"))
        if principal is None:
            # One body for every reason (no header, bad scheme, unknown key).
            raise unauthorized()
        return principal
    return f"ip:{request.client.host if request.client else 'unknown'}"


Principal = Annotated[str, Depends(authenticate)]


def rate_limit(principal: Principal, services: ServicesDep) -> str:
    wait = services.limiter.acquire(principal)
    if wait > 0:
        raise ApiError(
            429,
            "rate limit exceeded; retry later",
            headers={"Retry-After": RateLimiter.retry_after(wait)},
        )
    return principal


Caller = Annotated[str, Depends(rate_limit)]


def valid_ask(body: AskRequest, settings: SettingsDep) -> AskRequest:
    check_question(body.question, len(body.history), settings)
    return body


def check_question(question: str, history_turns: int, settings: Settings) -> None:
    """The limits a question must meet on every interface (ApiError 422 otherwise)."""
    if not question.strip():
        raise ApiError(422, "question must not be blank")
    if len(question) > settings.max_question_chars:
        raise ApiError(422, f"question is longer than {settings.max_question_chars} characters")
    if history_turns > settings.max_history_turns:
        raise ApiError(422, f"history has more than {settings.max_history_turns} turns")


AskDep = Annotated[AskRequest, Depends(valid_ask)]
