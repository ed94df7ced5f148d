"""invoke_many: lazy bounded window, order, per-item failures, stop on error, rate limit,
progress and summary, cancellation. Against the local endpoint (a Python handler on a
loopback server that decides each answer from the request body, so concurrent calls stay
deterministic) or smclient.testing's ScriptedRuntime where the order of answers matters."""

from __future__ import annotations

import _thread
import io
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from smclient import (
    BatchItem,
    BatchResult,
    BatchRun,
    BatchSummary,
    ClientConfig,
    InvalidInputError,
    ModelError,
    ModelNotReadyError,
    RetriesExhaustedError,
    RetryPolicy,
    ValidationError,
)
from smclient.local import HandlerError, LocalEndpoint, ServiceFault
from smclient.testing import Reply, ScriptedRuntime

from .conftest import FakeClock

WAIT = 10.0  # seconds a test handler waits for its peers before giving up (never reached)
NO_WAITS = RetryPolicy(max_attempts=3, backoff_initial=0.0, backoff_max=0.0)


def batch_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("smclient-batch-")]


def answer(body: bytes) -> bytes:
    """The test model: echoes {"i": n} as {"i": n, "y": 2n}, and fails on request."""
    record = json.loads(body)
    fault = record.get("fail")
    if fault == "validation":
        raise ServiceFault.validation("bad record")
    if fault == "model":
        raise HandlerError("cannot score", 422)
    if fault == "not_ready":
        raise ServiceFault.not_ready("still loading")
    return json.dumps({"i": record["i"], "y": 2 * record["i"]}).encode()


class Model:
    """The test model as a handler, counting the calls that reached it."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def predict(self, body: bytes, content_type: str | None, accept: str | None) -> bytes:
        with self._lock:
            self.calls += 1
        return answer(body)


@pytest.fixture
def model() -> Model:
    return Model()


@pytest.fixture
def local(model: Model) -> Iterator[LocalEndpoint]:
    with LocalEndpoint(model) as server:
        yield server


def test_results_in_input_order_with_every_value(local: LocalEndpoint) -> None:
    with local.endpoint(retry=NO_WAITS) as ep:
        run = ep.invoke_many(({"i": i} for i in range(40)), concurrency=4)
        results = list(run)
    assert [r.index for r in results] == list(range(40))
    assert [r.unwrap().json() for r in results] == [{"i": i, "y": 2 * i} for i in range(40)]
    assert all(r.ok and r.error is None and r.item.body == {"i": r.index} for r in results)
    summary = run.summary
    assert (summary.succeeded, summary.failed, summary.retries, summary.cancelled) == (40, 0, 0, 0)
    assert summary.finished
    assert batch_threads() == []


def gated(release_first: threading.Event, others_done: threading.Semaphore) -> Any:
    """Item 0 answers only once ``release_first`` is set; the others count themselves done."""

    def predict(body: bytes, content_type: str | None, accept: str | None) -> bytes:
        record = json.loads(body)
        if record["i"] == 0:
            assert release_first.wait(WAIT)
        else:
            others_done.release()
        return answer(body)

    return predict


def test_ordered_waits_for_the_head_even_when_it_finishes_last() -> None:
    release, done = threading.Event(), threading.Semaphore(0)

    def release_after_the_others() -> None:
        for _ in range(3):
            assert done.acquire(timeout=WAIT)
        release.set()

    helper = threading.Thread(target=release_after_the_others)
    helper.start()
    with LocalEndpoint(gated(release, done)) as server, server.endpoint() as ep:
        results = list(ep.invoke_many([{"i": i} for i in range(4)], concurrency=4))
    helper.join()
    assert [r.index for r in results] == [0, 1, 2, 3]


def test_completion_order_hands_results_back_as_they_finish() -> None:
    release, done = threading.Event(), threading.Semaphore(0)
    with LocalEndpoint(gated(release, done)) as server, server.endpoint() as ep:
        seen = []
        for result in ep.invoke_many([{"i": i} for i in range(4)], concurrency=4, ordered=False):
            seen.append(result.index)
            if len(seen) == 3:  # items 1-3 came back while item 0 was still held
                release.set()
    assert sorted(seen[:3]) == [1, 2, 3]
    assert seen[3] == 0


@pytest.mark.parametrize(("concurrency", "window"), [(1, None), (4, None), (3, 7)])
def test_the_input_is_read_lazily_within_the_window(concurrency: int, window: int | None) -> None:
    # The model holds each call until `concurrency` calls are in at once: proves the
    # batch does reach its concurrency, while the counts below prove it never exceeds it.
    barrier = threading.Barrier(concurrency, timeout=WAIT)
    lock = threading.Lock()
    now = {"in": 0, "max": 0}

    def predict(body: bytes, content_type: str | None, accept: str | None) -> bytes:
        with lock:
            now["in"] += 1
            now["max"] = max(now["max"], now["in"])
        barrier.wait()
        with lock:
            now["in"] -= 1
        return answer(body)

    read = 0

    def records() -> Iterator[dict[str, int]]:
        nonlocal read
        for i in range(10_000_000):  # never materialised
            read += 1
            yield {"i": i}

    limit = window or concurrency
    ahead = []
    with LocalEndpoint(predict) as server, server.endpoint() as ep:
        run = ep.invoke_many(records(), concurrency=concurrency, window=window)
        assert read == 0  # nothing is read before the first next()
        for received, result in enumerate(run, start=1):
            ahead.append(read - (received - 1))
            assert result.ok
            if received == 6 * concurrency:
                break
        barrier.abort()  # the calls still in flight answer at once (with an error)
        run.close()
    assert max(ahead) <= limit
    assert now["max"] == concurrency
    assert read <= 6 * concurrency + limit
    assert batch_threads() == []


def test_per_item_failures_are_reported_in_place(local: LocalEndpoint) -> None:
    items: list[Any] = [{"i": i} for i in range(12)]
    items[2] = {"i": 2, "fail": "validation"}
    items[5] = {"i": 5, "fail": "model"}
    items[9] = {"i": 9, "fail": "not_ready"}  # a cold start that never ends
    events = []
    policy = RetryPolicy(
        max_attempts=3, backoff_initial=0.0, backoff_max=0.0, on_retry=events.append
    )
    with local.endpoint(retry=policy) as ep:
        run = ep.invoke_many(items, concurrency=4)
        results = list(run)
    assert [r.index for r in results] == list(range(12))
    failed = {r.index: r.error for r in results if not r.ok}
    assert set(failed) == {2, 5, 9}
    assert isinstance(failed[2], ValidationError)
    assert failed[2].http_status == 400
    assert isinstance(failed[5], ModelError)
    assert (failed[5].http_status, failed[5].original_status_code) == (424, 422)
    assert isinstance(failed[9], RetriesExhaustedError)
    assert isinstance(failed[9].last_error, ModelNotReadyError)
    assert failed[9].attempts == 3
    with pytest.raises(ModelError):
        results[5].unwrap()
    assert [r.unwrap().json()["y"] for r in results if r.ok] == [
        2 * i for i in range(12) if i not in (2, 5, 9)
    ]
    summary = run.summary
    assert (summary.succeeded, summary.failed, summary.retries) == (9, 3, 2)
    assert summary.failures == {
        "ValidationError": 1,
        "ModelError": 1,
        # An exhausted cold start is raised as the last real error (docs/retries.md).
        "ModelNotReadyError": 1,
    }
    assert len(events) == 2  # the caller's own on_retry hook still sees every retry
    assert (
        "9 succeeded, 3 failed (ModelError: 1, ModelNotReadyError: 1, ValidationError: 1)"
        in str(summary)
    )


def test_bad_item_options_fail_that_item_before_sending(local: LocalEndpoint, model: Model) -> None:
    with local.endpoint() as ep:
        results = list(
            ep.invoke_many(
                [
                    BatchItem({"i": 0}, inference_id="x" * 65),  # the limit is 64
                    BatchItem({"i": 1}, inference_id="row-1", custom_attributes="k=v"),
                    object(),  # not JSON-encodable
                ],
                concurrency=2,
            )
        )
    assert isinstance(results[0].error, InvalidInputError)
    assert results[0].error.field == "inference_id"
    assert results[1].unwrap().json() == {"i": 1, "y": 2}
    assert isinstance(results[2].error, InvalidInputError)
    assert model.calls == 1  # only the good item was sent


def test_item_options_and_defaults_reach_the_wire(runtime: ScriptedRuntime) -> None:
    with runtime.endpoint() as ep:
        list(
            ep.invoke_many(
                [
                    b"1,2",
                    BatchItem(
                        b"3,4",
                        target_model="m-2.tar.gz",
                        inference_id="row-2",
                        custom_attributes="trace=2",
                        content_type="text/plain",
                    ),
                ],
                concurrency=1,
                content_type="text/csv",
                accept="application/json",
                custom_attributes="trace=all",
            )
        )
    first, second = (r.headers for r in runtime.requests)
    assert first["content-type"] == "text/csv"
    assert first["accept"] == "application/json"
    assert first["x-amzn-sagemaker-custom-attributes"] == "trace=all"
    assert "x-amzn-sagemaker-target-model" not in first
    assert second["content-type"] == "text/plain"
    assert second["accept"] == "application/json"
    assert second["x-amzn-sagemaker-custom-attributes"] == "trace=2"
    assert second["x-amzn-sagemaker-target-model"] == "m-2.tar.gz"
    assert second["x-amzn-sagemaker-inference-id"] == "row-2"


def test_model_handle_sends_its_target_model_and_rejects_another(
    runtime: ScriptedRuntime,
) -> None:
    with runtime.endpoint() as ep:
        handle = ep.model("model-a.tar.gz")
        results = list(
            handle.invoke_many(
                [
                    b"a",
                    BatchItem(b"b", target_model="model-a.tar.gz"),
                    BatchItem(b"c", target_model="other"),
                ],
                concurrency=1,
            )
        )
    assert [r.ok for r in results] == [True, True, False]
    assert isinstance(results[2].error, InvalidInputError)
    assert [r.headers["x-amzn-sagemaker-target-model"] for r in runtime.requests] == [
        "model-a.tar.gz",
        "model-a.tar.gz",
    ]


def test_an_exhausted_cold_start_on_a_model_handle(
    runtime: ScriptedRuntime, clock: FakeClock
) -> None:
    runtime.queue(*[Reply.model_not_ready()] * 3, Reply.ok(b"{}"))
    policy = RetryPolicy(
        timeout=10.0,
        backoff_initial=4.0,
        backoff_max=4.0,
        random=lambda: 1.0,
        clock=clock,
        sleep=clock.sleep,
    )
    with runtime.endpoint(retry=policy) as ep:
        run = ep.model("cold.tar.gz").invoke_many([b"x", b"y"], concurrency=1)
        first, second = list(run)
    # Attempts at 0, 4 and 8 s; a fourth would start at 8 + 4 >= 10 s: the policy gives up.
    assert isinstance(first.error, RetriesExhaustedError)
    assert isinstance(first.error.last_error, ModelNotReadyError)
    assert first.error.history == ("ModelNotReadyException",) * 3
    assert second.ok
    assert run.summary.retries == 2


def test_stop_on_error_raises_the_first_error_and_sends_nothing_after_it(
    runtime: ScriptedRuntime,
) -> None:
    runtime.queue(Reply.ok(b"0"), Reply.ok(b"1"), Reply.model_error(500, "boom"), Reply.ok(b"3"))
    seen = []
    with runtime.endpoint(retry=RetryPolicy.never()) as ep:
        run = ep.invoke_many((bytes([i]) for i in range(100)), concurrency=1, stop_on_error=True)
        with pytest.raises(ModelError) as caught:
            seen.extend(r.index for r in run)
    assert seen == [0, 1]
    assert caught.value.original_message == "boom"
    assert len(runtime.requests) == 3
    assert (run.summary.succeeded, run.summary.failed) == (2, 1)
    assert run.summary.finished
    assert batch_threads() == []


@pytest.mark.parametrize("ordered", [True, False])
def test_stop_on_error_with_calls_in_flight(
    local: LocalEndpoint, model: Model, ordered: bool
) -> None:
    items = [{"i": i, "fail": "model"} if i == 5 else {"i": i} for i in range(1000)]
    seen = []
    with local.endpoint() as ep:
        run = ep.invoke_many(items, concurrency=4, ordered=ordered, stop_on_error=True)
        with pytest.raises(ModelError):
            seen.extend(r.index for r in run if r.ok)
        sent = model.calls
    if ordered:
        assert seen == [0, 1, 2, 3, 4]  # everything before the failure, in order
        # Item 5 holds the window until its error is seen: at most 4 items after it were read.
        assert sent <= 5 + 4
    else:
        # Results that finished before item 5's error was taken may free slots first (each
        # lets one more item in), so the bound is looser, but the batch stops.
        assert sent < 100
    assert sent >= 6  # items 0-5 were all sent
    assert batch_threads() == []


def test_rate_limit_spaces_requests_with_an_injected_clock(
    runtime: ScriptedRuntime, clock: FakeClock
) -> None:
    runtime.queue(Reply.ok(), Reply.error("ServiceUnavailable", 503), Reply.ok(), Reply.ok())
    policy = RetryPolicy(backoff_initial=0.0, backoff_max=0.0, clock=clock, sleep=clock.sleep)
    with runtime.endpoint(retry=policy) as ep:
        run = ep.invoke_many(
            [b"a", b"b", b"c"], concurrency=1, rate_limit=4.0, clock=clock, sleep=clock.sleep
        )
        assert all(r.ok for r in run)
    # Four requests (b was retried once) at 4 per second: three waits of 0.25 s; the retry's
    # own backoff is 0 s.
    assert [round(s, 6) for s in clock.sleeps if s] == [0.25, 0.25, 0.25]
    assert len(runtime.requests) == 4
    assert run.summary.elapsed == pytest.approx(0.75)


def test_rate_limit_is_shared_by_the_workers(local: LocalEndpoint) -> None:
    waits = []
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    with local.endpoint() as ep:
        results = list(
            ep.invoke_many(
                [{"i": i} for i in range(8)],
                concurrency=4,
                rate_limit=10.0,
                clock=lambda: 100.0,  # time stands still: every request takes the next slot
                sleep=sleep,
            )
        )
    assert all(r.ok for r in results)
    assert sorted(round(w, 6) for w in waits) == [round(0.1 * k, 6) for k in range(1, 8)]


def test_progress_callback_and_summary(local: LocalEndpoint) -> None:
    calls: list[tuple[int, int | None]] = []
    with local.endpoint() as ep:
        list(
            ep.invoke_many(
                [{"i": i} for i in range(5)],
                concurrency=2,
                progress=lambda d, t: calls.append((d, t)),
            )
        )
        list(
            ep.invoke_many(
                ({"i": i} for i in range(3)),
                concurrency=2,
                progress=lambda d, t: calls.append((d, t)),
            )
        )
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5), (1, None), (2, None), (3, None)]


def test_text_bar_and_summary_line() -> None:
    from smclient._batch._progress import _TextBar

    out = io.StringIO()
    bar = _TextBar(out, width=10)
    summary = BatchSummary(
        succeeded=4, failed=1, failures={"ModelError": 1}, retries=2, elapsed=2.0
    )
    bar.update(summary, 10)
    bar.update(summary, None)
    bar.close(summary)
    assert out.getvalue().split("\r")[1:] == [
        "[#####-----] 5/10 calls, 1 failed",
        "5 calls, 1 failed",
        "4 succeeded, 1 failed (ModelError: 1), 2 retries in 2.0 s (2.5 calls/s)\n",
    ]
    assert summary.calls_per_second == 2.5
    assert summary.total == 5


def test_nothing_happens_before_the_first_next(runtime: ScriptedRuntime) -> None:
    with runtime.endpoint() as ep:
        run = ep.invoke_many([b"a", b"b"])
        assert isinstance(run, BatchRun)
        assert runtime.requests == []
        assert batch_threads() == []
        run.close()
        assert run.summary.finished
        assert run.summary.total == 0
    assert runtime.requests == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 51}, "concurrency"),  # above the default pool of 50 connections
        ({"concurrency": 4, "window": 3}, "window"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"rate_limit": -1.0}, "rate_limit"),
    ],
)
def test_bad_settings_are_rejected_before_anything_is_read(
    runtime: ScriptedRuntime, kwargs: dict[str, Any], field: str
) -> None:
    def never() -> Iterator[bytes]:
        raise AssertionError("read")
        yield b""

    with runtime.endpoint() as ep, pytest.raises(InvalidInputError) as caught:
        ep.invoke_many(never(), **kwargs)
    assert caught.value.field == field
    assert runtime.requests == []


def test_concurrency_may_grow_with_the_pool(runtime: ScriptedRuntime) -> None:
    with runtime.endpoint(config=ClientConfig(sign_requests=False, max_pool_connections=64)) as ep:
        assert [r.ok for r in ep.invoke_many([b"a"] * 3, concurrency=64)] == [True] * 3


# -- stopping ----------------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_close_early_stops_reading_and_ends_every_thread(local: LocalEndpoint) -> None:
    read = 0

    def records() -> Iterator[dict[str, int]]:
        nonlocal read
        for i in range(1_000_000):
            read += 1
            yield {"i": i}

    ep = local.endpoint()
    with ep.invoke_many(records(), concurrency=8) as run:
        for result in run:
            if result.index == 4:
                break
    assert batch_threads() == []
    assert read <= 5 + 8
    assert run.summary.succeeded + run.summary.cancelled <= read
    ep.close()


def test_a_dropped_iterator_ends_its_threads(local: LocalEndpoint) -> None:
    with local.endpoint() as ep:
        for result in ep.invoke_many(({"i": i} for i in range(1000)), concurrency=4):
            if result.index == 2:
                break  # the BatchRun is dropped here: CPython closes it at once
        assert batch_threads() == []


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Python's own SIGINT handler for the test: a process started in the background (a
    CI job behind `&`) inherits SIGINT ignored, and then `_thread.interrupt_main()` does
    nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_while_waiting_leaves_no_thread_or_socket(ctrl_c: None) -> None:
    fds = open_fds()

    def predict(body: bytes, content_type: str | None, accept: str | None) -> bytes:
        if json.loads(body)["i"] == 7:
            _thread.interrupt_main()  # Ctrl-C reaches the main thread, waiting for results
        return answer(body)

    seen: list[int] = []
    with LocalEndpoint(predict) as server:
        ep = server.endpoint()
        run = ep.invoke_many(({"i": i} for i in range(10_000)), concurrency=4)
        with pytest.raises(KeyboardInterrupt):
            seen.extend(r.index for r in run)
        assert batch_threads() == []
        assert run.summary.finished
        assert len(seen) < 100
        ep.close()
    assert open_fds() == fds


def test_ctrl_c_while_reading_the_input() -> None:
    def records() -> Iterator[bytes]:
        yield b"{}"
        yield b"{}"
        raise KeyboardInterrupt

    with ScriptedRuntime() as server, server.endpoint() as ep:
        with pytest.raises(KeyboardInterrupt):
            list(ep.invoke_many(records(), concurrency=2))
        assert batch_threads() == []


def test_stopping_cuts_a_retry_wait_short(runtime: ScriptedRuntime, ctrl_c: None) -> None:
    runtime.queue(Reply.error("ServiceUnavailable", 503))

    def interrupt(event: object) -> None:
        _thread.interrupt_main()  # Ctrl-C while the worker is about to wait 60 s

    policy = RetryPolicy(
        timeout=300.0,
        backoff_initial=60.0,
        backoff_max=60.0,
        random=lambda: 1.0,
        on_retry=interrupt,
    )
    started = time.monotonic()
    with runtime.endpoint(retry=policy) as ep:
        run = ep.invoke_many([b"x"], concurrency=1)
        with pytest.raises(KeyboardInterrupt):
            list(run)
    # Not a speed figure: a wait that was not cut would hold this test for 60 s.
    assert time.monotonic() - started < 30.0
    assert run.summary.cancelled == 1
    assert len(runtime.requests) == 1  # the retry was never sent
    assert batch_threads() == []


def test_results_and_items_are_values() -> None:
    item = BatchItem(b"secret", inference_id="a")
    assert "secret" not in repr(item)
    failure = BatchResult(3, item, None, ValueError("x"))
    assert not failure.ok
    assert repr(failure) == "BatchResult(index=3, error=ValueError('x'))"


def test_a_base_exception_in_a_call_is_raised_not_swallowed(runtime: ScriptedRuntime) -> None:
    class Exiting:
        content_type = "application/json"

        def encode(self, value: Any) -> bytes:
            raise SystemExit(3)

        def decode(self, data: bytes) -> Any:
            return data

    with runtime.endpoint() as ep:
        run = ep.invoke_many([1, BatchItem(2, codec=Exiting()), 3], concurrency=2)
        with pytest.raises(SystemExit):
            list(run)
    assert batch_threads() == []


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_true_picks_tqdm_else_a_text_bar_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types

    from smclient._batch._progress import _Silent, _TextBar, reporter

    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # importing it raises ImportError
    assert isinstance(reporter(True, TTY()), _TextBar)
    assert isinstance(reporter(True, io.StringIO()), _Silent)  # not a terminal: silent
    assert isinstance(reporter(False), _Silent)

    bars: list[Any] = []

    class FakeBar:
        def __init__(self, total: int | None, unit: str, desc: str) -> None:
            self.n, self.total, self.postfix, self.closed = 0, total, {}, False
            bars.append(self)

        def set_postfix(self, refresh: bool = True, **values: Any) -> None:
            self.postfix = values

        def update(self, n: int) -> None:
            self.n += n

        def close(self) -> None:
            self.closed = True

    written: list[str] = []
    fake = types.ModuleType("tqdm.auto")
    fake.tqdm = FakeBar  # type: ignore[attr-defined]
    FakeBar.write = staticmethod(written.append)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm.auto", fake)
    with ScriptedRuntime() as server, server.endpoint() as ep:
        server.queue(Reply.ok(), Reply.error("ValidationError", 400), Reply.ok())
        list(ep.invoke_many([b"a", b"b", b"c"], concurrency=1, progress=True))
    (bar,) = bars
    assert (bar.n, bar.total, bar.postfix, bar.closed) == (3, 3, {"failed": 1}, True)
    assert written[0].startswith("2 succeeded, 1 failed (ValidationError: 1), 0 retries")


def test_a_wider_window_keeps_calls_flowing_behind_a_slow_head() -> None:
    # Item 0 is held until seven later items have been answered: with concurrency 2 that
    # needs a window of 8 (with the default window of 2 the batch would wait for item 0).
    others = threading.Semaphore(0)

    def predict(body: bytes, content_type: str | None, accept: str | None) -> bytes:
        record = json.loads(body)
        if record["i"] == 0:
            for _ in range(7):
                assert others.acquire(timeout=WAIT)
        else:
            others.release()
        return answer(body)

    with LocalEndpoint(predict) as server, server.endpoint() as ep:
        run = ep.invoke_many([{"i": i} for i in range(12)], concurrency=2, window=8)
        results = list(run)
    assert [r.index for r in results] == list(range(12))
    assert all(r.ok for r in results)
