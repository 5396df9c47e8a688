"""Dynamic micro-batching of model calls made by concurrent requests.

Requests answered at once each call the same models (the question embedder, the reader).
A :class:`MicroBatcher` runs those calls in one worker thread: the first call waits up to
``wait_ms`` for others to join, then everything queued (up to ``max_items``) runs as one
forward pass, the way Triton and TEI batch dynamically. One batched pass keeps the cores
busy with one large matrix product instead of many small ones contending for them.

The wait is only worth paying when another request could join: a batcher waits when more than
one request is :func:`in_flight`, and otherwise runs what is queued at once. A lone question
used to pay the full wait at each of its three models (6 ms of a 100 ms answer).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_flight_lock = threading.Lock()
_in_flight = 0  # requests of this process inside the answering pipeline


@contextmanager
def in_flight() -> Iterator[None]:
    """Mark a request as inside the answering pipeline while the block runs."""
    global _in_flight
    with _flight_lock:
        _in_flight += 1
    try:
        yield
    finally:
        with _flight_lock:
            _in_flight -= 1


def company() -> bool:
    """Whether another request could join a batch: more than one is in flight."""
    return _in_flight > 1


class MicroBatcher(Generic[T, R]):
    """Runs ``fn`` over the items of concurrent :meth:`submit` calls, batched.

    ``fn`` maps a list of items to a list of results of the same length. ``size`` gives an
    item's weight against ``max_items`` (a passage read in three windows weighs three).
    The worker thread starts on first use; nothing runs at construction.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_items: int,
        wait_ms: float,
        name: str,
        size: Callable[[T], int] = lambda _: 1,
    ) -> None:
        self._fn = fn
        self._max = max_items
        self._wait_s = wait_ms / 1000.0
        self._size = size
        self.name = name
        self._queue: queue.SimpleQueue[tuple[T, Future[R]]] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.batches = 0
        self.items = 0

    def submit(self, item: T) -> R:
        """Run ``item`` in the next batch and return its result (blocking)."""
        self._ensure_worker()
        fut: Future[R] = Future()
        self._queue.put((item, fut))
        return fut.result()

    def _ensure_worker(self) -> None:
        if self._worker is None:
            with self._start_lock:
                if self._worker is None:
                    self._worker = threading.Thread(
                        target=self._run, name=f"batch-{self.name}", daemon=True
                    )
                    self._worker.start()

    def _run(self) -> None:
        held: tuple[T, Future[R]] | None = None
        while True:
            first = held or self._queue.get()
            held = None
            batch = [first]
            weight = self._size(first[0])
            deadline = time.monotonic() + (self._wait_s if company() else 0.0)
            while weight < self._max:
                left = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                w = self._size(nxt[0])
                if weight + w > self._max:
                    held = nxt  # starts the next batch
                    break
                batch.append(nxt)
                weight += w
            self._execute(batch)

    def _execute(self, batch: list[tuple[T, Future[R]]]) -> None:
        live = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results = self._fn([item for item, _ in live])
            if len(results) != len(live):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(live)} items")
        except BaseException as exc:  # every waiter hears of the failure, the worker lives on
            for _, fut in live:
                fut.set_exception(exc)
            return
        self.batches += 1
        self.items += len(live)
        for (_, fut), res in zip(live, results, strict=True):
            fut.set_result(res)
