"""SNS -> SQS watching (envelope and raw), TestNotification, foreign topics, duplicates,
missing notifications recovered from S3, and notifications.subscribe."""
# ruff: noqa: F811  (fixtures imported from tests/_async_helpers.py)

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from smclient import InvalidInputError, ServiceError
from smclient._asyncinference import AsyncInferenceError, AsyncInvocation, AsyncTimeoutError, Poller
from smclient.notifications import Subscription, subscribe

from ._async_helpers import (  # noqa: F401
    Requests,
    empty_bucket,
    fail_with,
    fresh_registry,
    handle,
    moto,
    requests,
    shared_endpoint,
)


@pytest.fixture
def ep(shared_endpoint: Any) -> Any:
    empty_bucket(shared_endpoint, "out-bucket")
    return shared_endpoint


@pytest.fixture(scope="module")
def topics(shared_endpoint: Any) -> tuple[str, str, str]:
    sns = shared_endpoint.client("sns")
    return tuple(  # type: ignore[return-value]
        sns.create_topic(Name=name)["TopicArn"] for name in ("ok-topic", "error-topic", "other")
    )


@pytest.fixture(params=[False, True], ids=["envelope", "raw"])
def sub(request: Any, ep: Any, topics: tuple[str, str, str]) -> Iterator[Subscription]:
    with subscribe(topics[0], topics[1], endpoint=ep, raw_delivery=request.param) as found:
        yield found


def success(inv: AsyncInvocation) -> str:
    return json.dumps(
        {
            "awsRegion": "us-east-1",
            "eventTime": "2026-11-22T04:00:00.000Z",
            "receivedTime": "2026-11-22T03:59:59.000Z",
            "invocationStatus": "Completed",
            "requestParameters": {"endpointName": "async-ep", "inputLocation": inv.input_location},
            "responseParameters": {
                "contentType": "application/json",
                "outputLocation": inv.output_location,
            },
            "inferenceId": inv.inference_id,
            "eventVersion": "1.0",
            "eventSource": "aws:sagemaker",
            "eventName": "InferenceResult",
        }
    )


def failure(inv: AsyncInvocation, reason: str) -> str:
    return json.dumps(
        {
            "awsRegion": "us-east-1",
            "invocationStatus": "Failed",
            "failureReason": reason,
            "requestParameters": {"endpointName": "async-ep", "inputLocation": inv.input_location},
            "inferenceId": inv.inference_id,
            "eventVersion": "1.0",
            "eventSource": "aws:sagemaker",
            "eventName": "InferenceResult",
        }
    )


TEST_NOTIFICATION = json.dumps(
    {"eventVersion": "1.0", "eventSource": "aws:sagemaker", "eventName": "TestNotification"}
)


def publish(ep: Any, topic: str, message: str) -> None:
    ep.client("sns").publish(TopicArn=topic, Message=message)


def put(ep: Any, location: str | None, body: bytes = b'{"ok": true}') -> None:
    assert location is not None
    bucket, _, key = location.removeprefix("s3://").partition("/")
    ep.client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def in_queue(ep: Any, sub: Subscription) -> int:
    attributes = ep.client("sqs").get_queue_attributes(
        QueueUrl=sub.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def sqs_poller(sub: Subscription, clock: Any, **kwargs: Any) -> Poller:
    kwargs.setdefault("s3", False)
    return sub.poller(clock=clock, sleep=clock.sleep, wait_time_seconds=0, **kwargs)


def test_subscribe_creates_a_guarded_queue_and_removes_it(
    ep: Any, topics: tuple[str, str, str]
) -> None:
    sqs, sns = ep.client("sqs"), ep.client("sns")
    with subscribe(topics[0], topics[1], endpoint=ep, queue_name="mine") as sub:
        assert sub.topics == topics[:2]
        policy = json.loads(
            sqs.get_queue_attributes(QueueUrl=sub.queue_url, AttributeNames=["Policy"])[
                "Attributes"
            ]["Policy"]
        )
        [statement] = policy["Statement"]
        assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == list(topics[:2])
        assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
        arns = {s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"]}
        assert set(sub.subscription_arns) <= arns
        assert len(sub.subscription_arns) == 2
    assert sub.closed
    assert sub.queue_url not in sqs.list_queues().get("QueueUrls", [])
    arns = {s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"]}
    assert not set(sub.subscription_arns) & arns
    sub.close()  # idempotent


def test_subscribe_checks_inputs_before_any_call(ep: Any, requests: Requests) -> None:
    requests.watch(ep.client("sqs"))
    with pytest.raises(InvalidInputError, match="success_topic"):
        subscribe("not-an-arn", endpoint=ep)
    with pytest.raises(InvalidInputError, match="queue_name"):
        subscribe("arn:aws:sns:us-east-1:123456789012:t", endpoint=ep, queue_name="a b")
    assert not requests.params


def test_subscribe_failure_removes_the_queue(ep: Any) -> None:
    before = ep.client("sqs").list_queues().get("QueueUrls", [])
    with pytest.raises(ServiceError):
        subscribe("arn:aws:sns:us-east-1:123456789012:missing", endpoint=ep, queue_name="gone")
    assert ep.client("sqs").list_queues().get("QueueUrls", []) == before


def test_success_notification_completes_and_is_deleted(
    ep: Any, sub: Subscription, clock: Any, topics: tuple[str, ...]
) -> None:
    inv = handle(ep, 1)
    put(ep, inv.output_location)
    publish(ep, topics[0], success(inv))
    p = sqs_poller(sub, clock)
    done = p.wait_one(inv, timeout=10)
    assert done.source == "notification"
    assert done.result() == {"ok": True}
    assert in_queue(ep, sub) == 0


def test_notification_before_the_object_is_visible_waits_for_it(
    ep: Any, sub: Subscription, clock: Any, topics: tuple[str, ...]
) -> None:
    inv = handle(ep, 2)
    publish(ep, topics[0], success(inv))
    p = sqs_poller(sub, clock)
    p.track([inv])
    assert p.poll() == []
    assert p.pending == [inv]
    put(ep, inv.output_location)
    assert p.poll() == []  # the next look is not due yet
    clock.advance(0.1)  # head_interval
    [done] = p.poll()
    assert done.succeeded
    assert done.source == "notification"


def test_failure_notification_carries_the_reason(
    ep: Any, sub: Subscription, clock: Any, topics: tuple[str, ...]
) -> None:
    inv = handle(ep, 3)
    put(ep, inv.failure_location, b'{"errorCode": "ModelError"}')
    publish(ep, topics[1], failure(inv, "ClientError: Received server error (500) from model."))
    error = inv.exception(timeout=10, poller=sqs_poller(sub, clock))
    assert isinstance(error, AsyncInferenceError)
    assert error.failure_reason == "ClientError: Received server error (500) from model."
    assert error.error_code == "ModelError"
    assert "Received server error (500)" in str(error)


def test_test_notifications_are_skipped_and_deleted(
    ep: Any, sub: Subscription, clock: Any, topics: tuple[str, ...]
) -> None:
    inv = handle(ep, 4)
    publish(ep, topics[0], TEST_NOTIFICATION)
    p = sqs_poller(sub, clock)
    p.track([inv])
    assert p.poll() == []
    assert in_queue(ep, sub) == 0


def test_duplicates_and_reordering_are_harmless(
    ep: Any, sub: Subscription, clock: Any, topics: tuple[str, ...]
) -> None:
    a, b = handle(ep, 5), handle(ep, 6)
    put(ep, a.output_location)
    publish(ep, topics[1], failure(b, "ClientError: boom"))
    publish(ep, topics[0], success(a))
    publish(ep, topics[0], success(a))
    publish(ep, topics[1], failure(b, "ClientError: boom"))
    p = sqs_poller(sub, clock)
    done, not_done = p.wait([a, b], timeout=10)
    assert (done, not_done) == ([a, b], [])
    assert a.exception() is None
    assert b.exception().failure_reason == "ClientError: boom"  # type: ignore[union-attr]
    p.poll()  # the leftovers of the duplicates, if the first batch did not hold them all
    assert in_queue(ep, sub) == 0


def test_unknown_invocations_are_left_for_their_owner(
    ep: Any, sub: Subscription, clock: Any, topics: tuple[str, ...]
) -> None:
    mine, theirs = handle(ep, 7), handle(ep, 8)
    publish(ep, topics[0], success(theirs))
    p = sqs_poller(sub, clock)
    p.track([mine])
    assert p.poll() == []
    assert in_queue(ep, sub) == 1


def test_foreign_topics_are_ignored(ep: Any, topics: tuple[str, ...], clock: Any) -> None:
    # A queue that receives from a third topic: its messages are neither used nor deleted.
    with subscribe(topics[0], topics[2], endpoint=ep) as wide:
        inv = handle(ep, 9)
        put(ep, inv.output_location)
        publish(ep, topics[2], success(inv))
        p = Poller(
            ep,
            queue_url=wide.queue_url,
            topics=[topics[0]],
            s3=False,
            wait_time_seconds=0,
            clock=clock,
            sleep=clock.sleep,
        )
        p.track([inv])
        assert p.poll() == []
        assert in_queue(ep, wide) == 1


def test_missing_notification_is_recovered_from_s3(ep: Any, sub: Subscription, clock: Any) -> None:
    inv = handle(ep, 10)
    p = sqs_poller(sub, clock, s3=True, reconcile_interval=20, interval=1)
    p.track([inv])
    assert p.poll() == []  # the first round looks at S3 once
    put(ep, inv.output_location)  # finished, but its notification never comes
    clock.advance(10)
    assert p.poll() == []  # no S3 round yet: the queue is the fast path
    clock.advance(10)
    [done] = p.poll()  # the reconciliation round finds it
    assert done.source == "s3"


def test_a_short_remaining_time_does_not_spin_on_the_queue(
    ep: Any, sub: Subscription, clock: Any, requests: Requests
) -> None:
    requests.watch(ep.client("sqs"))
    p = sub.poller(clock=clock, sleep=clock.sleep, s3=False, wait_time_seconds=20)
    with pytest.raises(AsyncTimeoutError):
        p.wait_one(handle(ep, 11), timeout=0.5)
    assert requests.counts["ReceiveMessage"] <= 2
    assert clock.sleeps == [0.5]


@pytest.fixture
def receives(ep: Any) -> Iterator[list[int]]:
    """The ``WaitTimeSeconds`` of each ReceiveMessage; answered empty at once (moto would
    really wait for the long poll)."""
    import types

    seen: list[int] = []

    def answer(params: dict[str, Any], **_: Any) -> Any:
        seen.append(json.loads(params["body"])["WaitTimeSeconds"])
        http = types.SimpleNamespace(status_code=200, headers={}, raw=None, content=b"")
        return http, {"Messages": [], "ResponseMetadata": {"HTTPStatusCode": 200}}

    sqs = ep.client("sqs")
    sqs.meta.events.register("before-call.sqs.ReceiveMessage", answer)
    yield seen
    sqs.meta.events.unregister("before-call.sqs.ReceiveMessage", answer)


def test_a_result_already_in_s3_is_found_without_long_polling(
    ep: Any, sub: Subscription, clock: Any, receives: list[int]
) -> None:
    # A handle resumed from JSON whose result is already there: found by the first S3
    # round, no 20 s long poll first.
    done, running = handle(ep, 12), handle(ep, 13)
    put(ep, done.output_location)
    p = sub.poller(clock=clock, sleep=clock.sleep, wait_time_seconds=20)
    p.track([done, running])
    [found] = p.poll(s3_now=True, wait=20)
    assert found.invocation == done
    assert receives == [0]  # a quick look at the queue only
    assert p.wait_one(done, timeout=100).source == "s3"
    assert receives == [0]


def test_the_first_round_long_polls_when_s3_has_nothing(
    ep: Any, sub: Subscription, clock: Any, receives: list[int]
) -> None:
    p = sub.poller(clock=clock, sleep=clock.sleep, wait_time_seconds=20)
    p.track([handle(ep, 14)])
    assert p.poll(s3_now=True, wait=20) == []
    assert receives == [20]


def test_a_failed_close_can_be_retried(
    ep: Any, topics: tuple[str, str, str], requests: Requests
) -> None:
    sqs, sns = ep.client("sqs"), ep.client("sns")
    sub = subscribe(topics[0], topics[1], endpoint=ep)
    undo = fail_with(sqs, "DeleteQueue", 403, "AccessDenied")
    try:
        with pytest.raises(ServiceError):
            sub.close()
        assert not sub.closed
        assert sub.queue_url in sqs.list_queues().get("QueueUrls", [])
        requests.watch(sqs)
        requests.watch(sns)
        with pytest.raises(ServiceError):
            sub.close()  # blocked again: the unsubscribes that worked are not repeated
        assert not sub.closed
        assert requests.counts == {"DeleteQueue": 1}
    finally:
        undo()
    sub.close()
    assert sub.closed
    assert requests.counts == {"DeleteQueue": 2}
    sub.close()  # idempotent once closed
    assert requests.counts == {"DeleteQueue": 2}
    assert sub.queue_url not in sqs.list_queues().get("QueueUrls", [])


def test_a_queue_already_gone_counts_as_deleted(ep: Any, topics: tuple[str, str, str]) -> None:
    # A DeleteQueue whose answer was lost is retried by close(): the queue is gone by then.
    sub = subscribe(topics[0], endpoint=ep)
    ep.client("sqs").delete_queue(QueueUrl=sub.queue_url)
    sub.close()
    assert sub.closed


def visible_at_once(ep: Any, queue_url: str) -> None:
    """Messages left in the queue come back at the next receive (not after 30 s)."""
    ep.client("sqs").set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": "0"})


def test_messages_nobody_handles_leave_a_subscription_queue_after_a_few_receives(
    ep: Any, sub: Subscription, clock: Any, topics: tuple[str, ...]
) -> None:
    visible_at_once(ep, sub.queue_url)
    mine, theirs = handle(ep, 15), handle(ep, 16)
    publish(ep, topics[0], success(theirs))
    publish(ep, topics[0], "not a SageMaker notification")
    p = sub.poller(clock=clock, sleep=clock.sleep, wait_time_seconds=0)
    p.track([mine])
    for _ in range(4):
        assert p.poll() == []
        assert in_queue(ep, sub) == 2
    assert p.poll() == []
    assert in_queue(ep, sub) == 0


def test_without_s3_unknown_notices_stay_but_junk_goes(
    ep: Any, sub: Subscription, clock: Any, topics: tuple[str, ...]
) -> None:
    # Without S3 rounds a dropped notice would be lost for a poller that tracks it later.
    visible_at_once(ep, sub.queue_url)
    publish(ep, topics[0], success(handle(ep, 17)))
    publish(ep, topics[0], "not a SageMaker notification")
    p = sqs_poller(sub, clock)
    p.track([handle(ep, 18)])
    for _ in range(6):
        assert p.poll() == []
    assert in_queue(ep, sub) == 1


def test_a_queue_the_poller_does_not_own_is_never_cleaned(
    ep: Any, topics: tuple[str, ...], clock: Any
) -> None:
    with subscribe(topics[0], topics[2], endpoint=ep) as wide:
        visible_at_once(ep, wide.queue_url)
        publish(ep, topics[2], success(handle(ep, 19)))
        publish(ep, topics[0], success(handle(ep, 20)))
        p = Poller(ep, queue_url=wide.queue_url, topics=[topics[0]], wait_time_seconds=0,
                   clock=clock, sleep=clock.sleep)  # fmt: skip
        p.track([handle(ep, 21)])
        for _ in range(6):
            assert p.poll() == []
        assert in_queue(ep, wide) == 2


def test_retries_wait_with_the_endpoints_sleep(
    moto: None, topics: tuple[str, str, str], clock: Any
) -> None:
    from smclient import Endpoint, RetriesExhaustedError, RetryPolicy

    policy = RetryPolicy(sleep=clock.sleep, clock=clock)
    with Endpoint("async-ep", region="us-east-1", retry=policy) as ep:
        sub = subscribe(topics[0], endpoint=ep)
        undo = fail_with(ep.client("sqs"), "DeleteQueue", 503, "ServiceUnavailable")
        try:
            with pytest.raises(RetriesExhaustedError):
                sub.close()
        finally:
            undo()
        assert len(clock.sleeps) == 3  # four attempts, on the endpoint's clock
        sub.close()
        assert sub.closed
