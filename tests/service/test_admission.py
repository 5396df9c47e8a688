"""Admission slots, the bounded queue, and micro-batching of concurrent model calls."""

from __future__ import annotations

import threading
import time

import pytest

from service.admission import Admission, Overloaded
from service.batching import MicroBatcher, in_flight


def test_slots_bound_concurrency_and_serve_in_arrival_order() -> None:
    gate = Admission(active=1, queued=10, timeout_s=10)
    order: list[int] = []
    inside = 0
    peak = 0
    lock = threading.Lock()
    release = threading.Event()

    def work(i: int) -> None:
        nonlocal inside, peak
        with gate.slot():
            with lock:
                inside += 1
                peak = max(peak, inside)
                order.append(i)
            if i == 0:
                release.wait(5)
            time.sleep(0.01)
            with lock:
                inside -= 1

    first = threading.Thread(target=work, args=(0,))
    first.start()
    while gate.running == 0:
        time.sleep(0.001)
    rest = []
    for i in range(1, 6):
        t = threading.Thread(target=work, args=(i,))
        t.start()
        rest.append(t)
        while gate.waiting < i:  # queue them in a known order
            time.sleep(0.001)
    release.set()
    for t in [first, *rest]:
        t.join(10)
    assert peak == 1
    assert order == [0, 1, 2, 3, 4, 5]


def test_a_full_queue_refuses_at_once_with_a_retry_hint() -> None:
    gate = Admission(active=1, queued=1, timeout_s=10)
    hold, queued_in = threading.Event(), threading.Event()

    def holder() -> None:
        with gate.slot():
            hold.wait(5)

    def waiter() -> None:
        queued_in.set()
        with gate.slot():
            pass

    threads = [threading.Thread(target=holder), threading.Thread(target=waiter)]
    threads[0].start()
    while gate.running == 0:
        time.sleep(0.001)
    threads[1].start()
    while gate.waiting == 0:
        time.sleep(0.001)
    started = time.perf_counter()
    with pytest.raises(Overloaded) as err, gate.slot():
        pass
    assert time.perf_counter() - started < 0.5
    assert err.value.retry_after >= 1
    assert gate.rejected == 1
    hold.set()
    for t in threads:
        t.join(5)
    assert gate.running == 0 and gate.waiting == 0


def test_a_wait_past_the_timeout_is_refused_and_leaves_the_queue() -> None:
    gate = Admission(active=1, queued=5, timeout_s=0.2)
    hold = threading.Event()

    def holder() -> None:
        with gate.slot():
            hold.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    while gate.running == 0:
        time.sleep(0.001)
    with pytest.raises(Overloaded, match=r"within 0\.2 s"), gate.slot():
        pass
    assert gate.waiting == 0
    hold.set()
    t.join(5)
    with gate.slot():  # the slot is usable again
        assert gate.running == 1


def test_micro_batcher_joins_concurrent_calls_and_keeps_results_apart() -> None:
    calls: list[list[int]] = []

    def square(items: list[int]) -> list[int]:
        calls.append(list(items))
        time.sleep(0.02)
        return [x * x for x in items]

    batcher = MicroBatcher(square, max_items=8, wait_ms=50, name="test")
    results: dict[int, int] = {}

    def ask(x: int) -> None:
        with in_flight():
            results[x] = batcher.submit(x)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {i: i * i for i in range(20)}
    assert all(len(c) <= 8 for c in calls)
    assert len(calls) < 20  # some calls shared a batch
    assert batcher.items == 20


def test_micro_batcher_respects_item_weights_and_reports_failures() -> None:
    def fail_on_seven(items: list[int]) -> list[int]:
        if 7 in items:
            raise ValueError("seven")
        return items

    batcher = MicroBatcher(fail_on_seven, max_items=10, wait_ms=1, name="t", size=lambda x: x)
    assert batcher.submit(3) == 3
    with pytest.raises(ValueError, match="seven"):
        batcher.submit(7)
    assert batcher.submit(12) == 12  # heavier than max_items: runs alone rather than never


def test_micro_batcher_waits_for_company_only_when_another_request_is_in_flight() -> None:
    calls: list[list[int]] = []

    def record(items: list[int]) -> list[int]:
        calls.append(list(items))
        return items

    batcher = MicroBatcher(record, max_items=8, wait_ms=400, name="company")
    with in_flight():  # a lone request: nobody could join, so no wait
        started = time.monotonic()
        assert batcher.submit(1) == 1
        assert time.monotonic() - started < 0.2

    # two requests in flight: the first call waits, and the second, 100 ms later, joins it
    both = threading.Barrier(2)
    out: dict[int, int] = {}

    def ask(x: int, delay: float) -> None:
        with in_flight():
            both.wait(5)
            time.sleep(delay)
            out[x] = batcher.submit(x)

    threads = [threading.Thread(target=ask, args=(x, d)) for x, d in ((2, 0.0), (3, 0.1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert out == {2: 2, 3: 3}
    assert calls == [[1], [2, 3]]
