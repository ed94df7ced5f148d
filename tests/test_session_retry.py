"""Retries inside a session: only failures before the model ran, whatever the policy says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smclient import (
    ClientConfig,
    InternalFailureError,
    ModelError,
    ReadTimeoutError,
    RetryPolicy,
    RetryReason,
)
from smclient._session import Session
from smclient._session_info import SessionState
from smclient.testing import Reply, ScriptedRuntime, no_retry_waits

from .test_session import SID, closed, opened, session_ids

pytestmark = pytest.mark.usefixtures("each_transport")


@pytest.fixture
def quiet() -> Iterator[None]:
    with no_retry_waits():
        yield


def test_pre_model_failures_are_retried(runtime: ScriptedRuntime, quiet: None) -> None:
    runtime.queue(
        Reply.model_not_ready(),
        opened(),
        Reply.error("ServiceUnavailable", 503),
        Reply.error("ThrottlingException", 400),
        Reply.ok(b"answer"),
        Reply.error("ServiceUnavailable", 503),
        closed(),
    )
    with Session.open(runtime.endpoint()) as s:
        assert s.open_result is not None
        assert s.open_result.attempts == 2
        result = s.invoke(b"q")
        assert (result.body, result.attempts) == (b"answer", 3)
    assert session_ids(runtime) == ["NEW_SESSION", "NEW_SESSION", SID, SID, SID, SID, SID]


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply.error("InternalFailure", 500), InternalFailureError),
        (Reply.model_error(507, "out of memory"), ModelError),
    ],
)
def test_may_have_run_failures_are_never_retried_in_a_session(
    runtime: ScriptedRuntime, quiet: None, reply: Reply, error: type[Exception]
) -> None:
    everything = RetryPolicy().including(*RetryReason)
    runtime.queue(opened(), reply, reply, Reply.ok(b"second run"), closed())
    with Session.open(runtime.endpoint(retry=everything)) as s:
        assert s.retry.retry_on == {RetryReason.MODEL_NOT_READY, RetryReason.TRANSIENT}
        with pytest.raises(error):
            s.invoke(b"q")
        with pytest.raises(error):
            s.invoke(b"q", retry=everything)  # a per-call policy is restricted too
        assert s.invoke(b"q").body == b"second run"
    assert len(runtime.requests) == 5


def test_read_timeouts_are_never_retried_in_a_session(quiet: None) -> None:
    with ScriptedRuntime() as runtime:
        endpoint = runtime.endpoint(
            config=ClientConfig(sign_requests=False, read_timeout=0.2),
            retry=RetryPolicy().including(RetryReason.READ_TIMEOUT),
        )
        runtime.queue(opened(), Reply.stall(), closed())
        with Session.open(endpoint) as s:
            with pytest.raises(ReadTimeoutError):
                s.invoke(b"slow")
            assert len(runtime.requests) == 2
            assert s.state is SessionState.OPEN
    assert session_ids(runtime) == ["NEW_SESSION", SID, SID]
