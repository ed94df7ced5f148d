"""Session over the wire against ScriptedRuntime: headers, lifecycle, expiry with an injected
clock, close failures, rejection mapping and retries inside a session."""

from __future__ import annotations

import gc
import json
import logging
import sys
import warnings
from datetime import datetime, timezone

import pytest

from smclient import (
    InternalFailureError,
    InvalidInputError,
    ModelError,
    RetryPolicy,
    RetryReason,
    ValidationError,
)
from smclient._session import Session
from smclient._session_info import (
    SessionClosedError,
    SessionExpiredError,
    SessionHeaderError,
    SessionInfo,
    SessionProtocol,
    SessionState,
)
from smclient.testing import Reply, ScriptedRuntime

pytestmark = pytest.mark.usefixtures("each_transport")

NEW = "X-Amzn-SageMaker-New-Session-Id"
CLOSED = "X-Amzn-SageMaker-Closed-Session-Id"
SID = "sess-1"
EXPIRES = datetime(2030, 1, 1, tzinfo=timezone.utc)
START = EXPIRES.timestamp() - 1200  # the usual 20-minute TTL


class WallClock:
    """Seconds since the epoch that move only when the test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def opened(sid: str = SID, expires: str = "2030-01-01T00:00:00Z") -> Reply:
    return Reply.ok(b'{"opened": true}', headers={NEW: f"{sid}; Expires={expires}"})


def closed(sid: str | None = SID) -> Reply:
    return Reply.ok(b"{}", headers={} if sid is None else {CLOSED: sid})


def rejected() -> Reply:
    return Reply.error("ValidationError", 400, "Invalid session ID")


@pytest.fixture
def wall() -> WallClock:
    return WallClock()


def session_ids(runtime: ScriptedRuntime) -> list[str | None]:
    return [r.headers.get("x-amzn-sagemaker-session-id") for r in runtime.requests]


def test_open_invoke_close_send_the_session_headers(
    runtime: ScriptedRuntime, wall: WallClock
) -> None:
    runtime.queue(opened(), Reply.ok(b"a1"), Reply.ok(b"a2"), closed())
    endpoint = runtime.endpoint()
    with Session.open(
        endpoint, open_body={"document": "long text"}, target_model="m.tar.gz", clock=wall
    ) as s:
        assert s.state is SessionState.OPEN
        assert s.info == SessionInfo(SID, EXPIRES)
        assert (s.id, s.expires_at, s.expires_in) == (SID, EXPIRES, 1200.0)
        assert s.open_result is not None
        assert s.open_result.json() == {"opened": True}
        assert s.invoke(b"q1").body == b"a1"
        assert s.invoke({"q": 2}).body == b"a2"
        assert SID in repr(s)
        assert "open" in repr(s)
    assert s.state is SessionState.CLOSED
    assert session_ids(runtime) == ["NEW_SESSION", SID, SID, SID]
    first, q1, q2, bye = runtime.requests
    assert json.loads(first.body) == {"requestType": "NEW_SESSION", "document": "long text"}
    assert first.headers["content-type"] == "application/json"
    assert (q1.body, json.loads(q2.body)) == (b"q1", {"q": 2})
    assert json.loads(bye.body) == {"requestType": "CLOSE"}
    assert {r.headers["x-amzn-sagemaker-target-model"] for r in runtime.requests} == {"m.tar.gz"}


@pytest.mark.parametrize(
    ("protocol", "open_doc", "close_doc"),
    [
        (SessionProtocol.DJL, {"requestType": "NEW_SESSION"}, {"requestType": "CLOSE_SESSION"}),
        (
            SessionProtocol.TORCHSERVE,
            {"type": "start_session"},
            {"type": "close_session", "session_id": SID},
        ),
    ],
)
def test_presets_on_the_wire(
    runtime: ScriptedRuntime,
    protocol: SessionProtocol,
    open_doc: dict[str, str],
    close_doc: dict[str, str],
) -> None:
    runtime.queue(opened(), closed())
    with Session.open(runtime.endpoint(), protocol=protocol) as s:
        assert s.protocol is protocol
    assert [json.loads(r.body) for r in runtime.requests] == [open_doc, close_doc]


def test_custom_bodies_and_content_type(runtime: ScriptedRuntime) -> None:
    protocol = SessionProtocol(
        "plain", open=b"OPEN", close=lambda sid: f"CLOSE {sid}", content_type="text/plain"
    )
    runtime.queue(opened(), closed())
    with Session.open(runtime.endpoint(), protocol=protocol, open_body=b"\x00context") as s:
        pass
    assert s.state is SessionState.CLOSED
    assert [r.body for r in runtime.requests] == [b"\x00context", f"CLOSE {SID}".encode()]
    assert {r.headers["content-type"] for r in runtime.requests} == {"text/plain"}


def test_expiry_with_an_injected_clock(runtime: ScriptedRuntime, wall: WallClock) -> None:
    runtime.queue(opened(), Reply.ok(b"in time"))
    s = Session.open(runtime.endpoint(), clock=wall, expiry_margin=10)
    wall.now = EXPIRES.timestamp() - 10.5
    assert s.expires_in == 10.5
    assert s.invoke(b"q").body == b"in time"
    wall.now += 0.5  # reaches expires_at - margin
    assert s.state is SessionState.EXPIRED
    with pytest.raises(SessionExpiredError) as info:
        s.invoke(b"late")
    assert (info.value.session_id, info.value.expires_at) == (SID, EXPIRES)
    assert info.value.server_error is None
    assert isinstance(info.value, SessionClosedError)
    assert s.close() is None  # the container drops it: nothing is sent
    assert len(runtime.requests) == 2
    assert s.expires_in == 10.0


def test_zero_margin_lasts_until_expires_at(runtime: ScriptedRuntime, wall: WallClock) -> None:
    runtime.queue(opened(), Reply.ok(b"ok"))
    s = Session.open(runtime.endpoint(), clock=wall, expiry_margin=0)
    wall.now = EXPIRES.timestamp() - 0.001
    assert s.invoke(b"q").body == b"ok"
    wall.now = EXPIRES.timestamp()
    with pytest.raises(SessionExpiredError):
        s.invoke(b"q")
    assert s.expires_in == 0.0


def test_closed_session_raises_before_sending_and_close_is_idempotent(
    runtime: ScriptedRuntime,
) -> None:
    runtime.queue(opened(), closed())
    s = Session.open(runtime.endpoint())
    result = s.close()
    assert result is not None
    assert result.closed_session_id == SID
    assert s.close() is None
    with pytest.raises(SessionClosedError, match="is closed; nothing was sent") as info:
        s.invoke(b"q")
    assert not isinstance(info.value, SessionExpiredError)
    assert info.value.state is SessionState.CLOSED
    with s:  # leaving the block again sends nothing
        pass
    assert len(runtime.requests) == 2


@pytest.mark.parametrize("answer", ["other-session", None])
def test_close_checks_the_closed_session_id(runtime: ScriptedRuntime, answer: str | None) -> None:
    runtime.queue(opened(), closed(answer), closed())
    s = Session.open(runtime.endpoint())
    with pytest.raises(SessionHeaderError) as info:
        s.close()
    assert info.value.header == answer
    assert info.value.session_id == SID
    assert s.state is SessionState.OPEN  # it may still be open: close() can be called again
    assert s.close() is not None
    assert s.state is SessionState.CLOSED
    assert session_ids(runtime) == ["NEW_SESSION", SID, SID]


def test_a_failing_close_never_hides_the_blocks_exception(
    runtime: ScriptedRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.queue(opened(), Reply.model_error(500, "cannot close"))
    caplog.set_level(logging.WARNING, logger="smclient")
    with pytest.raises(KeyError) as info, Session.open(runtime.endpoint()) as s:
        raise KeyError("the block's own error")
    error = info.value
    close_error = error.session_close_error  # type: ignore[attr-defined]
    assert isinstance(close_error, ModelError)
    assert close_error.original_status_code == 500
    if sys.version_info >= (3, 11):
        assert any(SID in note and "ModelError" in note for note in error.__notes__)
    [record] = [r for r in caplog.records if r.name == "smclient"]
    assert record.levelno == logging.WARNING
    assert SID in record.getMessage()
    assert "KeyError" in record.getMessage()
    assert record.exc_info is not None
    assert record.exc_info[1] is close_error
    assert s.state is SessionState.OPEN
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        del s
        gc.collect()  # no ResourceWarning: the failed close was already reported


def test_a_failing_close_after_a_clean_block_is_raised(runtime: ScriptedRuntime) -> None:
    runtime.queue(opened(), Reply.model_error(503, "busy"), closed())
    with pytest.raises(ModelError), Session.open(runtime.endpoint()) as s:
        s_ref = s
    assert s_ref.state is SessionState.OPEN
    assert s_ref.close() is not None  # the retry goes through
    assert s_ref.state is SessionState.CLOSED


def test_a_rejected_id_becomes_session_closed(runtime: ScriptedRuntime) -> None:
    runtime.queue(opened(), rejected(), closed())
    s = Session.open(runtime.endpoint())
    with pytest.raises(SessionClosedError) as info:
        s.invoke(b"q")
    error = info.value
    assert not isinstance(error, SessionExpiredError)
    assert isinstance(error.server_error, ValidationError)
    assert error.__cause__ is error.server_error
    assert error.server_error.http_status == 400
    assert error.server_error.request_id is not None
    assert error.server_error.request_id in str(error)
    assert s.state is SessionState.REJECTED  # the 400 may not be about the session
    with pytest.raises(SessionClosedError):
        s.invoke(b"again")
    assert len(runtime.requests) == 2
    assert s.close() is not None  # the close body is still sent
    assert s.state is SessionState.CLOSED
    assert s.close() is None
    assert session_ids(runtime) == ["NEW_SESSION", SID, SID]


def test_a_rejection_after_the_expiry_passed_during_the_call_is_expired(
    runtime: ScriptedRuntime,
) -> None:
    readings = iter([START, EXPIRES.timestamp() + 1])  # before sending; after the answer
    runtime.queue(opened(), rejected())
    s = Session.open(runtime.endpoint(), clock=lambda: next(readings, EXPIRES.timestamp() + 2))
    with pytest.raises(SessionExpiredError) as info:
        s.invoke(b"q")
    assert isinstance(info.value.server_error, ValidationError)
    assert s.state is SessionState.EXPIRED


def test_a_model_error_in_a_session_is_not_a_rejection(runtime: ScriptedRuntime) -> None:
    runtime.queue(opened(), Reply.model_error(400, "bad input"), Reply.ok(b"fine"), closed())
    with Session.open(runtime.endpoint()) as s:
        with pytest.raises(ModelError):
            s.invoke(b"bad")
        assert s.state is SessionState.OPEN
        assert s.invoke(b"good").body == b"fine"


def test_a_close_the_endpoint_rejects_counts_as_closed(
    runtime: ScriptedRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.queue(opened(), rejected())
    caplog.set_level(logging.WARNING, logger="smclient")
    with Session.open(runtime.endpoint()) as s:
        pass
    assert s.state is SessionState.CLOSED
    assert any("no longer knows" in r.getMessage() for r in caplog.records)


def test_open_without_a_session_header(runtime: ScriptedRuntime) -> None:
    runtime.queue(Reply.ok(b"{}"))
    with pytest.raises(SessionHeaderError, match="without a NewSessionId") as info:
        Session.open(runtime.endpoint())
    assert info.value.header is None
    assert info.value.endpoint == "scripted"


def test_open_with_a_malformed_header(runtime: ScriptedRuntime) -> None:
    runtime.queue(Reply.ok(b"{}", headers={NEW: "sess-1; Expires=tomorrow"}))
    with pytest.raises(SessionHeaderError) as info:
        Session.open(runtime.endpoint())
    assert info.value.header == "sess-1; Expires=tomorrow"


def test_open_failures_are_raised_and_leave_nothing_behind(
    runtime: ScriptedRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.queue(Reply.model_error(503, "no capacity"), Reply.error("InternalFailure", 500))
    caplog.set_level(logging.WARNING, logger="smclient")
    with pytest.raises(ModelError):
        Session.open(runtime.endpoint())
    policy = RetryPolicy().including(RetryReason.INTERNAL)
    with pytest.raises(InternalFailureError):
        Session.open(runtime.endpoint(retry=policy))
    assert len(runtime.requests) == 2  # not retried, although the policy opts in
    assert [r.getMessage().count("may have reached the model") for r in caplog.records] == [1, 1]


def test_open_checks_its_arguments_before_sending(runtime: ScriptedRuntime) -> None:
    endpoint = runtime.endpoint()
    with pytest.raises(InvalidInputError, match="expiry_margin"):
        Session.open(endpoint, expiry_margin=-1)
    with pytest.raises(InvalidInputError, match="protocol"):
        Session.open(endpoint, protocol="request_type")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="open_body"):
        Session.open(endpoint, open_body=3.5)
    assert runtime.requests == []


def test_attach_resumes_a_session(runtime: ScriptedRuntime, wall: WallClock) -> None:
    text = SessionInfo(SID, EXPIRES).to_json()
    runtime.queue(Reply.ok(b"resumed"), closed())
    with Session.attach(runtime.endpoint(), SessionInfo.from_json(text), clock=wall) as s:
        assert s.open_result is None
        assert s.expires_in == 1200.0
        assert s.invoke(b"q").body == b"resumed"
    assert session_ids(runtime) == [SID, SID]
    with pytest.raises(InvalidInputError):
        Session.attach(runtime.endpoint(), SessionInfo(SID), EXPIRES)
    with pytest.raises(InvalidInputError):
        Session.attach(runtime.endpoint(), "NEW_SESSION")


def test_attach_without_expiry_never_expires_client_side(runtime: ScriptedRuntime) -> None:
    runtime.queue(Reply.ok(b"ok"), closed())
    with Session.attach(runtime.endpoint(), SID, clock=lambda: 1e12) as s:
        assert (s.expires_at, s.expires_in, s.state) == (None, None, SessionState.OPEN)
        assert s.invoke(b"q").body == b"ok"


def test_a_session_dropped_while_open_warns_with_its_id(runtime: ScriptedRuntime) -> None:
    runtime.queue(opened("leaky-1"))
    with pytest.warns(ResourceWarning, match="session leaky-1 on endpoint scripted"):
        Session.open(runtime.endpoint())  # dropped at once: never closed, never detached


def test_detach_hands_over_without_closing(runtime: ScriptedRuntime) -> None:
    runtime.queue(opened())
    s = Session.open(runtime.endpoint())
    info = s.detach()
    assert info == SessionInfo(SID, EXPIRES)
    assert s.state is SessionState.DETACHED
    with pytest.raises(SessionClosedError, match="detached") as raised:
        s.invoke(b"q")
    assert raised.value.state is SessionState.DETACHED
    assert s.close() is None
    assert len(runtime.requests) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        del s
        gc.collect()


def test_stream_in_a_session_passes_the_id(runtime: ScriptedRuntime) -> None:
    runtime.queue(opened(), rejected(), closed())
    s = Session.open(runtime.endpoint())
    with pytest.raises(SessionClosedError) as info:
        s.stream(b"q")
    assert isinstance(info.value.server_error, ValidationError)
    assert runtime.requests[1].path.endswith("/invocations-response-stream")
    assert session_ids(runtime) == ["NEW_SESSION", SID]
    with pytest.raises(SessionClosedError):
        s.stream(b"q")  # nothing sent
    assert len(runtime.requests) == 2
    assert s.close() is not None


def test_a_session_does_not_pickle_but_its_info_does(runtime: ScriptedRuntime) -> None:
    import pickle

    runtime.queue(opened(), closed())
    with Session.open(runtime.endpoint()) as s:
        with pytest.raises(TypeError, match="detach"):
            pickle.dumps(s)
        assert pickle.loads(pickle.dumps(s.info)) == s.info


def test_endpoint_session_is_the_front_door(runtime: ScriptedRuntime) -> None:
    import smclient

    runtime.queue(opened(), Reply.ok(b"answer"), closed())
    wall = WallClock()
    with runtime.endpoint("chat").session(open_body={"context": "long"}, clock=wall) as s:
        assert isinstance(s, smclient.Session)
        assert s.invoke(b"q").body == b"answer"
    assert s.state is SessionState.CLOSED
    first, second, third = (r.headers.get("x-amzn-sagemaker-session-id") for r in runtime.requests)
    assert (first, second, third) == ("NEW_SESSION", SID, SID)
