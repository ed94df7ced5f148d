"""``TimedCalls``: model calls bounded by the invocation timeout on reused daemon workers."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from smclient.local.hosting._calls import TimedCalls
from smclient.local.hosting._handlers import HandlerError, HandlerReply

WAIT = 5.0


def where(handler: Any) -> HandlerReply:
    return HandlerReply(str(threading.get_ident()).encode(), "text/plain")


def workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "timed-test"]


@pytest.mark.usefixtures("no_thread_leak")
def test_calls_reuse_an_idle_worker_and_join_ends_it() -> None:
    timed = TimedCalls("timed-test", idle_seconds=WAIT)
    call = timed.wrap(where, 1.0)
    first, second = call(None), call(None)
    assert first.body == second.body  # the same worker thread
    assert first.body != str(threading.get_ident()).encode()
    assert [t.daemon for t in workers()] == [True]
    start = time.monotonic()
    assert timed.join(WAIT) == []
    assert time.monotonic() - start < 1.0  # not the idle timeout
    assert workers() == []


@pytest.mark.usefixtures("no_thread_leak")
def test_idle_worker_ends_after_idle_seconds() -> None:
    timed = TimedCalls("timed-test", idle_seconds=0.05)
    timed.wrap(where, 1.0)(None)
    deadline = time.monotonic() + WAIT
    while workers():
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert timed.wrap(where, 1.0)(None).body  # a new worker starts when none is idle
    assert timed.join(WAIT) == []


@pytest.mark.usefixtures("no_thread_leak")
def test_abandoned_call_keeps_its_worker_and_the_next_call_gets_another() -> None:
    gate = threading.Event()
    timed = TimedCalls("timed-test", idle_seconds=WAIT)

    def stuck(handler: Any) -> HandlerReply:
        assert gate.wait(WAIT)
        return HandlerReply(b"late", "text/plain")

    with pytest.raises(HandlerError) as info:
        timed.wrap(stuck, 0.05)(None)
    assert info.value.status_code == 0
    assert timed.wrap(where, 1.0)(None).body
    assert len(workers()) == 2
    assert timed.join(0.05) == ["timed-test"]  # the stuck call is still running
    gate.set()
    assert timed.join(WAIT) == []


def test_errors_reach_the_caller_and_no_timeout_runs_inline() -> None:
    timed = TimedCalls("timed-test")

    def boom(handler: Any) -> HandlerReply:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        timed.wrap(boom, 1.0)(None)
    assert timed.wrap(where, None)(None).body == str(threading.get_ident()).encode()
    assert timed.join(WAIT) == []
