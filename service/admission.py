"""Admission: how many answers are computed at once, and a bounded, first-come queue.

Two cores gain nothing from thirty-two pipelines contending for them: each request only
waits longer, and an unbounded backlog turns a burst into timeouts for everyone. Answers
therefore run in at most ``active`` slots; up to ``queued`` more wait in arrival order, and
a request beyond that, or one that waited ``timeout_s``, is refused with :class:`Overloaded`
(HTTP 503 with ``Retry-After``) instead of waiting without bound.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from index.errors import GroundQAError


class Overloaded(GroundQAError):
    """Too many answers are waiting; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Admission:
    """At most ``active`` holders of a slot at once; at most ``queued`` waiting, FIFO."""

    def __init__(self, active: int, queued: int, timeout_s: float) -> None:
        self.active = active
        self.queued = queued
        self.timeout_s = timeout_s
        self._cond = threading.Condition()
        self._running = 0
        self._waiting: deque[object] = deque()
        self._service_s = 0.2  # moving average of a slot's hold time, for Retry-After
        self.rejected = 0

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return self._running

    def retry_after(self) -> int:
        """Seconds until the queue as it stands now has drained, at least 1."""
        ahead = len(self._waiting) + self._running
        return max(1, math.ceil(ahead * self._service_s / self.active))

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot for the body; raise :class:`Overloaded` when none comes in time."""
        with self._cond:
            if self._running < self.active and not self._waiting:
                self._running += 1
            else:
                self._wait_turn()
        started = time.perf_counter()
        try:
            yield
        finally:
            held = time.perf_counter() - started
            with self._cond:
                self._running -= 1
                self._service_s = 0.9 * self._service_s + 0.1 * held
                self._cond.notify_all()

    def _wait_turn(self) -> None:
        # Called holding the condition's lock.
        if len(self._waiting) >= self.queued:
            self.rejected += 1
            raise Overloaded(
                f"{self._running + len(self._waiting)} answers are in progress or waiting; "
                "retry shortly",
                self.retry_after(),
            )
        ticket = object()
        self._waiting.append(ticket)
        deadline = time.monotonic() + self.timeout_s
        try:
            while not (self._waiting[0] is ticket and self._running < self.active):
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(timeout=left):
                    if self._waiting[0] is ticket and self._running < self.active:
                        break  # the turn came with the timeout
                    self.rejected += 1
                    raise Overloaded(
                        f"no answer slot came free within {self.timeout_s:g} s; retry shortly",
                        self.retry_after(),
                    )
        except BaseException:
            self._waiting.remove(ticket)
            self._cond.notify_all()  # the one behind may be first now
            raise
        self._waiting.popleft()
        self._running += 1
        self._cond.notify_all()  # a second free slot serves the next in line too
