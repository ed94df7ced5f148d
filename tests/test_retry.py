"""The retry policy, proven against a scripted loopback server (moto has no ModelNotReady).

Every test counts the requests that reached the server and compares them with the
attempts smclient reports: that proves botocore's own retries are pinned to one.
"""

from __future__ import annotations

import logging
import pickle

import pytest

from smclient import (
    ClientConfig,
    ConnectError,
    InternalFailureError,
    InvalidInputError,
    ModelError,
    ModelNotReadyError,
    ReadTimeoutError,
    RetriesExhaustedError,
    RetryEvent,
    RetryPolicy,
    RetryReason,
    ServiceUnavailableError,
    ValidationError,
)
from smclient.testing import Reply, ScriptedRuntime, no_retry_waits
from tests.conftest import FakeClock


def policy(clock: FakeClock, **kwargs: object) -> RetryPolicy:
    return RetryPolicy(sleep=clock.sleep, clock=clock, random=lambda: 0.5, **kwargs)  # type: ignore[arg-type]


def hold_each_attempt(endpoint: object, clock: FakeClock, seconds: float) -> list[float]:
    """Make every request cost ``seconds`` on the fake clock (the service holds MME calls
    up to 60 s); return the list that collects each attempt's start time."""
    starts: list[float] = []
    events = endpoint.client().meta.events  # type: ignore[attr-defined]
    events.register(
        "before-call.sagemaker-runtime.InvokeEndpoint", lambda **_: starts.append(clock())
    )
    events.register(
        "after-call.sagemaker-runtime.InvokeEndpoint", lambda **_: clock.advance(seconds)
    )
    return starts


def test_model_not_ready_k_times_then_answers(runtime: ScriptedRuntime, clock: FakeClock) -> None:
    runtime.queue(*[Reply.model_not_ready("m.tar.gz")] * 3, Reply.ok(b'{"ok": 1}'))
    ep = runtime.endpoint("mme", retry=policy(clock))
    result = ep.model("m.tar.gz").invoke({"x": 1})
    assert result.json() == {"ok": 1}
    assert result.attempts == 4 == len(runtime.requests)
    assert all(r.headers["x-amzn-sagemaker-target-model"] == "m.tar.gz" for r in runtime.requests)
    # Full jitter with random()=0.5: half of 0.5, 1.0, 2.0 seconds.
    assert clock.sleeps == [0.25, 0.5, 1.0]


def test_never_ready_stops_at_the_cap_and_starts_no_attempt_after_it(
    runtime: ScriptedRuntime, clock: FakeClock
) -> None:
    runtime.queue(*[Reply.model_not_ready()] * 50)
    ep = runtime.endpoint("mme", retry=policy(clock))
    starts = hold_each_attempt(ep, clock, 60.0)
    first = clock()
    with pytest.raises(RetriesExhaustedError) as info:
        ep.invoke(b"x", target_model="m")
    err = info.value
    assert isinstance(err.__cause__, ModelNotReadyError)
    assert err.last_error is err.__cause__
    assert err.attempts == len(runtime.requests) == len(starts)
    assert all(start - first < 360.0 for start in starts)
    # One more attempt would have started at or after 360 s: the policy stopped instead.
    assert clock() - first + 2.5 >= 360.0
    assert err.history == ("ModelNotReadyException",) * err.attempts
    assert err.elapsed == pytest.approx(clock() - first)
    assert err.__cause__.attempts == err.attempts


def test_service_unavailable_then_success(runtime: ScriptedRuntime, clock: FakeClock) -> None:
    runtime.queue(
        Reply.error("ServiceUnavailable", 503), Reply.ok(b"fine", content_type="text/plain")
    )
    result = runtime.endpoint(retry=policy(clock)).invoke("hello", content_type="text/plain")
    assert (result.text(), result.attempts, len(runtime.requests)) == ("fine", 2, 2)


def test_transient_errors_are_bounded(runtime: ScriptedRuntime, clock: FakeClock) -> None:
    runtime.queue(*[Reply.error("ServiceUnavailable", 503)] * 10)
    with pytest.raises(RetriesExhaustedError) as info:
        runtime.endpoint(retry=policy(clock)).invoke(b"x")
    assert info.value.attempts == 4 == len(runtime.requests)
    assert isinstance(info.value.__cause__, ServiceUnavailableError)


@pytest.mark.parametrize(
    ("reply", "error_type"),
    [
        (
            Reply.error("ValidationError", 400, "Endpoint e of account 1 not found."),
            ValidationError,
        ),
        (Reply.model_error(500, "boom"), ModelError),
        (Reply.error("InternalFailure", 500), InternalFailureError),
    ],
)
def test_errors_that_may_not_be_retried_are_sent_once(
    runtime: ScriptedRuntime, clock: FakeClock, reply: Reply, error_type: type[Exception]
) -> None:
    runtime.queue(reply, Reply.ok())
    with pytest.raises(error_type) as info:
        runtime.endpoint(retry=policy(clock)).invoke(b"x")
    assert len(runtime.requests) == 1
    assert info.value.attempts == 1  # type: ignore[attr-defined]
    assert clock.sleeps == []


def test_model_error_carries_the_container_answer(runtime: ScriptedRuntime) -> None:
    runtime.queue(Reply.model_error(418, "teapot"))
    with pytest.raises(ModelError) as info:
        runtime.endpoint("my-ep").invoke(b"x")
    err = info.value
    assert (err.error_code, err.http_status) == ("ModelError", 424)
    assert (err.original_status_code, err.original_message) == (418, "teapot")
    assert err.log_stream_arn is not None
    assert err.log_stream_arn.startswith("arn:aws:logs:")
    assert err.request_id
    assert err.endpoint == "my-ep"
    assert err.operation == "InvokeEndpoint"
    assert "my-ep" in str(err)
    assert "ModelError" in str(err)
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is ModelError
    assert (clone.original_status_code, clone.request_id, str(clone)) == (
        418,
        err.request_id,
        str(err),
    )


def test_internal_failure_retried_when_opted_in(runtime: ScriptedRuntime, clock: FakeClock) -> None:
    runtime.queue(
        Reply.error("InternalFailure", 500),
        Reply.error("InternalDependencyException", 530),
        Reply.ok(),
    )
    ep = runtime.endpoint(retry=policy(clock).including(RetryReason.INTERNAL))
    assert ep.invoke(b"x").attempts == 3 == len(runtime.requests)


def test_model_out_of_memory_has_its_own_opt_in(runtime: ScriptedRuntime, clock: FakeClock) -> None:
    runtime.queue(Reply.model_error(507, "out of memory"))
    with pytest.raises(ModelError):
        runtime.endpoint(retry=policy(clock)).invoke(b"x")
    assert len(runtime.requests) == 1
    runtime.queue(*[Reply.model_error(507, "out of memory")] * 5)
    ep = runtime.endpoint(retry=policy(clock).including(RetryReason.MODEL_OUT_OF_MEMORY))
    with pytest.raises(RetriesExhaustedError) as info:
        ep.invoke(b"x")
    assert info.value.attempts == 3 == len(runtime.requests) - 1  # max_out_of_memory_attempts


def test_read_timeout_is_not_retried_by_default(runtime: ScriptedRuntime, clock: FakeClock) -> None:
    runtime.queue(Reply.stall(), Reply.ok())
    ep = runtime.endpoint(
        retry=policy(clock), config=ClientConfig(read_timeout=0.2, sign_requests=False)
    )
    with pytest.raises(ReadTimeoutError) as info:
        ep.invoke(b"x")
    assert info.value.attempts == 1
    assert len(runtime.requests) == 1  # botocore did not resend it behind our back


def test_read_timeout_retried_when_opted_in(runtime: ScriptedRuntime, clock: FakeClock) -> None:
    runtime.queue(Reply.stall(), Reply.ok(b"late"))
    ep = runtime.endpoint(
        retry=policy(clock).including(RetryReason.READ_TIMEOUT),
        config=ClientConfig(read_timeout=0.2, sign_requests=False),
    )
    assert ep.invoke(b"x").body == b"late"
    assert len(runtime.requests) == 2


def test_connect_errors_are_retried_and_bounded(clock: FakeClock) -> None:
    import socket

    from smclient import Endpoint

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ep = Endpoint(
        "ep",
        region="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=ClientConfig(sign_requests=False, connect_timeout=1),
        retry=policy(clock),
    )
    with pytest.raises(RetriesExhaustedError) as info:
        ep.invoke(b"x")
    assert isinstance(info.value.__cause__, ConnectError)
    assert info.value.attempts == 4


def test_dropped_connection_is_not_retried_by_default(
    runtime: ScriptedRuntime, clock: FakeClock
) -> None:
    from smclient import ConnectionClosedError

    runtime.queue(Reply.drop(), Reply.ok())
    with pytest.raises(ConnectionClosedError):
        runtime.endpoint(retry=policy(clock)).invoke(b"x")
    assert len(runtime.requests) == 1


def test_on_retry_hook_and_log_records_name_the_attempt_but_never_the_body(
    runtime: ScriptedRuntime, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.queue(Reply.model_not_ready(), Reply.ok())
    events: list[RetryEvent] = []
    ep = runtime.endpoint("logged", retry=policy(clock, on_retry=events.append))
    with caplog.at_level(logging.INFO, logger="smclient"):
        ep.invoke({"secret": "payload-123"}, target_model="m1")
    assert len(events) == 1
    event = events[0]
    assert (event.endpoint, event.target_model, event.attempt) == ("logged", "m1", 1)
    assert (event.reason, event.error_code, event.delay) == (
        RetryReason.MODEL_NOT_READY,
        "ModelNotReadyException",
        0.25,
    )
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "logged" in text
    assert "m1" in text
    assert "ModelNotReadyException" in text
    assert "payload-123" not in text
    assert "payload-123" not in repr(event)


def test_no_retry_waits_switch(runtime: ScriptedRuntime) -> None:
    slept: list[float] = []
    runtime.queue(Reply.error("ServiceUnavailable", 503), Reply.ok())
    with no_retry_waits():
        runtime.endpoint(retry=RetryPolicy(sleep=slept.append)).invoke(b"x")
    assert slept == [0.0]


def test_never_sends_exactly_once(runtime: ScriptedRuntime) -> None:
    runtime.queue(Reply.model_not_ready(), Reply.ok())
    with pytest.raises(ModelNotReadyError):
        runtime.endpoint(retry=RetryPolicy.never()).invoke(b"x")
    assert len(runtime.requests) == 1


def test_per_call_policy_overrides_the_endpoint_default(
    runtime: ScriptedRuntime, clock: FakeClock
) -> None:
    runtime.queue(Reply.model_not_ready(), Reply.ok())
    ep = runtime.endpoint(retry=RetryPolicy.never())
    assert ep.invoke(b"x", retry=policy(clock)).attempts == 2


def test_backoff_formula_and_ceiling() -> None:
    p = RetryPolicy(random=lambda: 1.0)
    assert [p.backoff(n) for n in (1, 2, 3, 4, 5, 6, 100)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert RetryPolicy(random=lambda: 0.0).backoff(3) == 0.0


def test_policy_is_a_value() -> None:
    a = RetryPolicy()
    assert a == RetryPolicy()
    b = a.including(RetryReason.INTERNAL)
    assert RetryReason.INTERNAL in b.retry_on
    assert RetryReason.INTERNAL not in a.retry_on
    assert b.excluding(RetryReason.INTERNAL) == a
    assert pickle.loads(pickle.dumps(a)) == a


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": -1}, {"max_attempts": 0}, {"max_transient_attempts": 0}, {"backoff_initial": 10}],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_max_attempts_caps_model_not_ready(runtime: ScriptedRuntime, clock: FakeClock) -> None:
    runtime.queue(*[Reply.model_not_ready()] * 5)
    with pytest.raises(RetriesExhaustedError) as info:
        runtime.endpoint(retry=policy(clock, max_attempts=2)).invoke(b"x")
    assert info.value.attempts == 2 == len(runtime.requests)
