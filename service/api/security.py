"""API keys, rate limiting, request size and upload file names."""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Sequence

from pydantic import SecretStr
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_body


class KeyChecker:
    """Checks bearer tokens against the configured keys in constant time."""

    def __init__(self, keys: Sequence[SecretStr]) -> None:
        # Digests have a fixed length, so compare_digest never leaks a key's length.
        self._digests = [hashlib.sha256(k.get_secret_value().encode()).digest() for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def check(self, token: str | None) -> str | None:
        """A stable, non-secret principal name for a valid ``token``; None otherwise."""
        if token is None:
            return None
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        match = None
        for i, known in enumerate(self._digests):
            # No early exit: every key is compared whatever matched.
            if hmac.compare_digest(digest, known):
                match = i
        return None if match is None else f"key{match + 1}"

    def check_authorization(self, header: str | None) -> str | None:
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.check(token.strip())


class RateLimiter:
    """A token bucket per principal, in this process only (each replica counts on its own)."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_principals: int = 10_000,
    ) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._max = max_principals
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def acquire(self, principal: str) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is available."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(principal, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                tokens -= 1.0
                wait = 0.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[principal] = (tokens, now)
            while len(self._buckets) > self._max:
                # The least recently seen principal goes; at worst it gets a fresh bucket.
                self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after(wait: float) -> str:
        return str(max(1, math.ceil(wait)))


class BadFileName(ValueError):
    pass


_ALLOWED_PUNCT = frozenset(" ._-()+,")


def safe_filename(name: str | None) -> str:
    """``name`` if it is a plain, visible file name; raises BadFileName otherwise.

    Nothing is silently rewritten: a name with a directory part, a leading dot or an
    unusual character is refused, so what is stored is exactly what the client named.
    """
    if not name:
        raise BadFileName("a file name is required")
    name = unicodedata.normalize("NFC", name)
    if "/" in name or "\\" in name or "\x00" in name:
        raise BadFileName(f"file name {name!r} must not contain a path")
    if name.startswith(".") or name.strip() != name:
        raise BadFileName(f"file name {name!r} must not be hidden or padded with spaces")
    if len(name.encode()) > 200:
        raise BadFileName("file name is too long")
    for ch in name:
        if not (ch.isalnum() or ch in _ALLOWED_PUNCT):
            raise BadFileName(f"file name {name!r} contains {ch!r}")
    return name


class BodyTooLarge(HTTPException):
    # An HTTPException, so FastAPI's body parsing re-raises it and the app's handler answers.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


class BodySizeLimit:
    """413 for a request body over its path's limit: at once if declared, else while read."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._reject(scope, receive, send, limit)
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            # Raised outside a FastAPI route (e.g. inside the UI's app): answer here.
            if started:
                raise
            await self._reject(scope, receive, send, limit)

    @staticmethod
    async def _reject(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        rid = scope.get("state", {}).get("request_id")
        body = error_body("payload_too_large", f"request body exceeds {limit} bytes", rid)
        response = JSONResponse(body, status_code=413, headers={"Connection": "close"})
        await response(scope, receive, send)
