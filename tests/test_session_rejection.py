"""A 400 ``ValidationError`` during a session call: the session stops sending calls, but its
close body is still sent once - the 400 may be about the request (a bad payload, a wrong
TargetModel), not the session, and the code alone cannot tell the two apart."""

from __future__ import annotations

import gc
import json
import logging
import warnings

import pytest

from smclient import ModelError, ValidationError
from smclient._session import Session
from smclient._session_info import SessionClosedError, SessionExpiredError, SessionState
from smclient.testing import Reply, ScriptedRuntime

from .test_session import EXPIRES, SID, START, WallClock, closed, opened, session_ids

pytestmark = pytest.mark.usefixtures("each_transport")


def bad_request() -> Reply:
    # The session is fine: the request itself is refused (here, an unknown TargetModel).
    return Reply.error("ValidationError", 400, "Failed to find model data for TargetModel")


def test_a_400_the_session_did_not_cause_still_closes_it_on_exit(
    runtime: ScriptedRuntime,
) -> None:
    runtime.queue(opened(), bad_request(), closed())
    with (
        pytest.raises(SessionClosedError) as info,
        Session.open(runtime.endpoint(), clock=WallClock()) as s,
    ):
        s.invoke(b"q", target_model="missing.tar.gz")
    error = info.value
    assert not isinstance(error, SessionExpiredError)
    assert isinstance(error.server_error, ValidationError)
    assert error.__cause__ is error.server_error
    assert error.state is SessionState.REJECTED
    assert session_ids(runtime) == ["NEW_SESSION", SID, SID]
    assert json.loads(runtime.requests[2].body) == {"requestType": "CLOSE"}
    assert s.state is SessionState.CLOSED
    assert not hasattr(error, "session_close_error")


def test_invoke_after_a_rejection_sends_nothing(runtime: ScriptedRuntime) -> None:
    runtime.queue(opened(), bad_request(), closed())
    s = Session.open(runtime.endpoint(), clock=WallClock())
    with pytest.raises(SessionClosedError):
        s.invoke(b"q")
    assert s.state is SessionState.REJECTED
    for call in (s.invoke, s.stream):
        with pytest.raises(SessionClosedError, match="nothing was sent") as again:
            call(b"again")
        assert again.value.state is SessionState.REJECTED
        assert again.value.server_error is None
    assert len(runtime.requests) == 2
    result = s.close()
    assert result is not None
    assert result.closed_session_id == SID
    assert s.state is SessionState.CLOSED
    assert s.close() is None  # exactly once
    assert len(runtime.requests) == 3


def test_a_400_on_the_close_after_a_rejection_counts_as_closed_and_never_hides_the_block(
    runtime: ScriptedRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.queue(opened(), bad_request(), Reply.error("ValidationError", 400, "gone"))
    caplog.set_level(logging.WARNING, logger="smclient")
    with (
        pytest.raises(SessionClosedError) as info,
        Session.open(runtime.endpoint(), clock=WallClock()) as s,
    ):
        s.invoke(b"q")
    assert info.value.state is SessionState.REJECTED
    assert not hasattr(info.value, "session_close_error")
    assert s.state is SessionState.CLOSED
    assert session_ids(runtime) == ["NEW_SESSION", SID, SID]
    assert any("no longer knows" in r.getMessage() for r in caplog.records)


def test_a_failing_close_after_a_rejection_can_be_retried(runtime: ScriptedRuntime) -> None:
    runtime.queue(opened(), bad_request(), Reply.model_error(503, "busy"), closed("other"))
    s = Session.open(runtime.endpoint(), clock=WallClock())
    with pytest.raises(SessionClosedError):
        s.invoke(b"q")
    with pytest.raises(ModelError):
        s.close()
    assert s.state is SessionState.REJECTED  # not OPEN: still no calls
    with pytest.raises(SessionClosedError):
        s.invoke(b"q")
    with pytest.raises(ValueError, match="ClosedSessionId"):
        s.close()
    assert s.state is SessionState.REJECTED
    runtime.queue(closed())
    assert s.close() is not None
    assert s.state is SessionState.CLOSED
    assert len(runtime.requests) == 5


def test_a_rejected_session_dropped_without_close_warns(runtime: ScriptedRuntime) -> None:
    def reject_and_drop() -> None:
        s = Session.open(runtime.endpoint(), clock=WallClock())
        with pytest.raises(SessionClosedError):
            s.invoke(b"q")
        del s  # never closed, never detached
        gc.collect()  # the raised error's traceback held it in a cycle

    runtime.queue(opened("leaky-2"), bad_request())
    with pytest.warns(ResourceWarning, match="session leaky-2 on endpoint scripted .* rejected"):
        reject_and_drop()
    assert len(runtime.requests) == 2


def test_a_rejected_session_detaches_and_then_sends_nothing(runtime: ScriptedRuntime) -> None:
    runtime.queue(opened(), bad_request())
    s = Session.open(runtime.endpoint(), clock=WallClock())
    with pytest.raises(SessionClosedError):
        s.invoke(b"q")
    assert s.detach().id == SID
    assert s.state is SessionState.DETACHED
    assert s.close() is None
    assert len(runtime.requests) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        del s
        gc.collect()


def test_a_rejected_session_past_its_expiry_is_not_closed_over_the_wire(
    runtime: ScriptedRuntime,
) -> None:
    wall = WallClock(START)
    runtime.queue(opened(), bad_request())
    s = Session.open(runtime.endpoint(), clock=wall)
    with pytest.raises(SessionClosedError):
        s.invoke(b"q")
    wall.now = EXPIRES.timestamp()
    assert s.state is SessionState.EXPIRED
    with pytest.raises(SessionExpiredError):
        s.invoke(b"q")
    assert s.close() is None  # the container drops it itself
    assert len(runtime.requests) == 2
