"""Handles that behave like futures: results known process-wide (no request after a wait),
concurrent.futures-style ``wait`` / ``as_completed``, notified outputs looked at on a short
schedule instead of after a long poll, failure reasons merged whichever source came first.

moto (in-process) serves S3, SNS and SQS; time is a FakeClock. Where moto would really wait
(an SQS long poll on an empty queue), a botocore ``before-call`` hook answers instead and
moves the fake clock by the ``WaitTimeSeconds`` asked for (said in each such test)."""
# ruff: noqa: F811  (fixtures imported from tests/_async_helpers.py)

from __future__ import annotations

import gc
import itertools
import json
import pickle
import threading
import types
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from smclient import InvalidInputError, WaitResult
from smclient._asyncinference import (
    AsyncInferenceError,
    AsyncInvocation,
    AsyncTimeoutError,
    Poller,
    as_completed,
    wait,
)
from smclient._asyncinference._notify import Notice
from smclient._asyncinference._registry import REGISTRY
from smclient._asyncinference._state import HEAD_MAX, PollState
from smclient.notifications import Subscription, subscribe

from ._async_helpers import (  # noqa: F401
    Requests,
    empty_bucket,
    fresh_registry,
    handle,
    moto,
    requests,
    shared_endpoint,
)

REASON = "ClientError: Received server error (500) from model. See the logs."


@pytest.fixture
def ep(shared_endpoint: Any) -> Any:
    empty_bucket(shared_endpoint, "out-bucket")
    return shared_endpoint


@pytest.fixture(scope="module")
def topics(shared_endpoint: Any) -> tuple[str, str]:
    sns = shared_endpoint.client("sns")
    return tuple(  # type: ignore[return-value]
        sns.create_topic(Name=name)["TopicArn"] for name in ("fut-ok", "fut-error")
    )


@pytest.fixture
def sub(ep: Any, topics: tuple[str, str]) -> Iterator[Subscription]:
    with subscribe(topics[0], topics[1], endpoint=ep) as found:
        yield found


def put(ep: Any, location: str | None, body: bytes = b'{"ok": true}') -> None:
    assert location is not None
    bucket, _, key = location.removeprefix("s3://").partition("/")
    ep.client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def notification(inv: AsyncInvocation, reason: str | None = None) -> str:
    doc: dict[str, Any] = {
        "invocationStatus": "Failed" if reason else "Completed",
        "inferenceId": inv.inference_id,
        "requestParameters": {"endpointName": "async-ep", "inputLocation": inv.input_location},
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }
    if reason:
        doc["failureReason"] = reason
    else:
        doc["responseParameters"] = {"outputLocation": inv.output_location}
    return json.dumps(doc)


def publish(ep: Any, topic: str, message: str) -> None:
    ep.client("sns").publish(TopicArn=topic, Message=message)


def in_queue(ep: Any, queue_url: str) -> int:
    attributes = ep.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def put_many(locations: list[str], body: bytes) -> None:
    """Objects written straight into moto's S3 store (1,000 PutObject calls through botocore
    would take most of the test's time; the poller still reads them through botocore)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for location in locations:
        bucket, _, key = location.removeprefix("s3://").partition("/")
        backend.put_object(bucket, key, body)


def waits(requests: Requests) -> list[int]:
    return [p["WaitTimeSeconds"] for name, p in requests.params if name == "ReceiveMessage"]


# -- a notification before its object --------------------------------------------------------


def test_a_notification_50ms_before_its_object_yields_within_one_head_interval(
    ep: Any, sub: Subscription, clock: Any, topics: tuple[str, str], requests: Requests
) -> None:
    inv = handle(ep, 1)
    start = clock.now

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= start + 0.05 and not requests.counts["PutObject"]:
            requests.counts["PutObject"] += 1
            put(ep, inv.output_location)  # visible 50 ms after the notification

    publish(ep, topics[0], notification(inv))
    requests.watch(ep.client("sqs"))
    requests.watch(ep.client("s3"))
    p = sub.poller(clock=clock, sleep=sleep, wait_time_seconds=20, head_interval=0.1)
    done = p.wait_one(inv, timeout=3600)
    assert done.source == "notification"
    assert clock.now - start == pytest.approx(0.1)  # one short interval, not 20 s
    # The first receive long-polls (nothing was due) and got the notification at once;
    # with a look due in 0.1 s, the next receive only glances at the queue.
    assert waits(requests) == [20, 0]
    assert requests.counts["HeadObject"] == 2  # at once (404), then 0.1 s later
    assert done.result() == {"ok": True}
    assert in_queue(ep, sub.queue_url) == 0


def test_the_look_schedule_backs_off_and_shortens_the_long_poll() -> None:
    # The sans-I/O core alone: no requests, times in seconds.
    inv = handle(types.SimpleNamespace(name="async-ep"), 2)  # type: ignore[arg-type]
    state = PollState(head_interval=0.1)
    state.track([inv])
    assert state.receive_wait(20, 0.0, 20) == 20  # nothing notified: the full long poll
    assert state.next_due() is None
    notice = Notice(inv.inference_id, "Completed", inv.output_location, None, None)
    assert state.on_notice(notice, 100.0) == (True, None)
    assert state.due(100.0) == [inv]  # looked at at once
    assert state.receive_wait(20, 100.0, 20) == 0
    now, looks = 100.0, []
    while now < 160:
        if state.due(now):
            looks.append(round(now - 100, 2))
            assert state.head_answer(inv, None, now, exists=False) is None
        now = state.next_due() or now
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(looks)]
    assert gaps[:6] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]
    assert set(gaps[6:]) == {HEAD_MAX}
    # Between looks 5 s apart, the queue is long-polled for the whole seconds until the next.
    assert state.receive_wait(20, now - 4.5, 20) == 4
    assert state.on_notice(notice, now) == (True, None)  # a duplicate keeps the schedule
    assert state.next_due() == now
    done = state.head_answer(inv, 7, now, exists=True)
    assert done is not None
    assert done.size == 7
    assert done.source == "notification"
    assert state.next_due() is None
    assert state.receive_wait(20, now, 20) == 20


@pytest.fixture
def empty_queue(ep: Any, clock: Any) -> Iterator[list[int]]:
    """ReceiveMessage answered empty by a hook that moves the fake clock by the
    ``WaitTimeSeconds`` asked for (moto would really wait)."""
    seen: list[int] = []

    def answer(params: dict[str, Any], **_: Any) -> Any:
        seconds = json.loads(params["body"])["WaitTimeSeconds"]
        seen.append(seconds)
        clock.advance(seconds)
        http = types.SimpleNamespace(status_code=200, headers={}, raw=None, content=b"")
        return http, {"Messages": [], "ResponseMetadata": {"HTTPStatusCode": 200}}

    sqs = ep.client("sqs")
    sqs.meta.events.register("before-call.sqs.ReceiveMessage", answer)
    yield seen
    sqs.meta.events.unregister("before-call.sqs.ReceiveMessage", answer)


def test_nothing_notified_costs_no_extra_request(
    ep: Any, sub: Subscription, clock: Any, empty_queue: list[int], requests: Requests
) -> None:
    requests.watch(ep.client("s3"))
    p = sub.poller(clock=clock, sleep=clock.sleep, reconcile_interval=60)
    done, not_done = p.wait([handle(ep, n) for n in range(50)], timeout=120)
    assert (done, len(not_done)) == ([], 50)
    assert empty_queue == [20] * 6 + [0]  # 120 s of long polls; a glance at the deadline
    assert clock.sleeps == []
    # S3: a round at the start, after 60 s, after 120 s and the last look (2 folders each).
    assert requests.counts == {"ListObjectsV2": 8}


# -- a result learned once ---------------------------------------------------------------------


def test_wait_then_result_on_1000_handles_sends_no_polling_request(
    ep: Any, clock: Any, requests: Requests
) -> None:
    handles = [handle(ep, n) for n in range(1000)]
    put_many([h.output_location for h in handles[:990]], b"out")
    put_many([h.failure_location or "" for h in handles[990:]], b'{"errorCode": "ModelError"}')
    done, not_done = wait(handles, timeout=60, poller=Poller(ep, clock=clock, sleep=clock.sleep))
    assert (len(done), not_done) == (1000, [])
    requests.watch(ep.client("s3"))
    assert all(h.done() for h in handles)
    assert all(h.exception() is None for h in handles[:990])
    assert all(h.result(download=False).key.endswith(".out") for h in handles[:990])
    assert requests.counts == {}  # done(), exception(), result(download=False): nothing sent
    assert all(h.result() == b"out" for h in handles[:100])
    assert requests.counts == {"GetObject": 100}  # the outputs themselves, nothing else
    errors = [h.exception() for h in handles[990:]]
    assert all(isinstance(e, AsyncInferenceError) and e.error_code == "ModelError" for e in errors)
    assert requests.counts == {"GetObject": 110}  # each failure object read once...
    assert all(h.exception() is not None for h in handles[990:])
    assert requests.counts == {"GetObject": 110}  # ...and not again
    assert clock.sleeps == []


def test_every_handle_of_an_inference_knows_its_result(
    ep: Any, clock: Any, requests: Requests
) -> None:
    inv = handle(ep, 3)
    put(ep, inv.output_location)
    twin = AsyncInvocation.from_json(inv.to_json(), endpoint=ep)  # another copy, same process
    copy = pickle.loads(pickle.dumps(inv))
    [found] = as_completed([inv], timeout=10, poller=Poller(ep, clock=clock, sleep=clock.sleep))
    requests.watch(ep.client("s3"))
    assert twin.done()
    assert copy.done()
    assert twin.wait().source == "s3"
    assert requests.counts == {}
    assert "outcome" not in inv.to_json()  # the JSON form stays the handle alone
    assert AsyncInvocation.from_json(inv.to_json(), endpoint=ep) == inv
    assert len(pickle.dumps(found)) < 4096  # small, picklable
    # A handle restored where nothing is known (another process) finds it again in S3.
    REGISTRY.clear()
    elsewhere = AsyncInvocation.from_json(inv.to_json(), endpoint=ep)
    assert elsewhere.done()
    assert requests.counts["ListObjectsV2"] >= 1


def test_known_results_are_held_weakly(ep: Any, clock: Any) -> None:
    inv = handle(ep, 4)
    put(ep, inv.output_location)
    wait([inv], timeout=10, poller=Poller(ep, clock=clock, sleep=clock.sleep))
    assert len(REGISTRY) == 1
    del inv
    gc.collect()
    assert len(REGISTRY) == 0  # nothing keeps a result nobody can ask for


def test_default_endpoints_are_released_with_their_last_user(moto: None) -> None:
    inv = AsyncInvocation(
        endpoint_name="nobody-holds-me", inference_id="i", output_location="s3://b/o/1.out",
        failure_location=None, input_location="s3://b/i", submitted_at=0.0, deadline=1e12,
        region="us-east-1",
    )  # fmt: skip
    first = inv.bound_endpoint()
    assert inv.bound_endpoint() is first  # shared while used
    gone = weakref.ref(first)
    del first
    gc.collect()
    assert gone() is None  # not kept for the life of the process
    assert inv.bound_endpoint().name == "nobody-holds-me"


# -- failure reasons, duplicates, late notifications --------------------------------------------


def test_a_failure_found_in_s3_first_still_carries_the_later_reason(
    ep: Any, sub: Subscription, clock: Any, topics: tuple[str, str]
) -> None:
    inv, other = handle(ep, 5), handle(ep, 50)
    put(ep, inv.failure_location, b"not json")
    p = sub.poller(clock=clock, sleep=clock.sleep, wait_time_seconds=0)
    [completion] = p.as_completed([inv], timeout=100)
    assert completion.source == "s3"
    assert completion.failure_reason is None  # no notification yet
    publish(ep, topics[1], notification(inv, REASON))  # it comes later
    p.track([other])  # the poller reads its queue while something is pending
    assert p.poll() == []  # nothing new finishes...
    assert in_queue(ep, sub.queue_url) == 0
    # ...but the reason reached every view of the failure, whichever came first.
    assert completion.exception().failure_reason == REASON  # type: ignore[union-attr]
    assert inv.exception().failure_reason == REASON  # type: ignore[union-attr]
    assert inv.wait().failure_reason == REASON
    twin = AsyncInvocation.from_json(inv.to_json(), endpoint=ep)
    with pytest.raises(AsyncInferenceError, match="Received server error") as info:
        twin.result()
    assert info.value.failure_reason == REASON


def test_a_queued_reason_is_merged_before_the_s3_failure_is_returned(
    ep: Any, sub: Subscription, clock: Any, topics: tuple[str, str], requests: Requests
) -> None:
    inv, other = handle(ep, 6), handle(ep, 7)
    put(ep, inv.failure_location, b"{}")
    p = sub.poller(clock=clock, sleep=clock.sleep, wait_time_seconds=0)
    p.track([inv, other])
    publish(ep, topics[1], notification(inv, REASON))
    # Force the order "S3 first": the S3 round runs before the queue is read.
    [completion] = p.poll(s3_now=True)
    assert completion.source == "s3"
    assert completion.failure_reason == REASON
    assert in_queue(ep, sub.queue_url) == 0


def test_late_and_duplicate_notifications_are_harmless(
    ep: Any, sub: Subscription, clock: Any, topics: tuple[str, str]
) -> None:
    ok, bad = handle(ep, 8), handle(ep, 9)
    put(ep, ok.output_location)
    put(ep, bad.failure_location, b"{}")
    p = sub.poller(clock=clock, sleep=clock.sleep, wait_time_seconds=0)
    done, _ = p.wait([ok, bad], timeout=10)  # found in S3, no notification yet
    assert done == [ok, bad]
    for _ in range(2):  # late, and duplicated
        publish(ep, topics[0], notification(ok))
        publish(ep, topics[1], notification(bad, REASON))
    p.track([handle(ep, 10)])  # something still pending, so the queue is read
    assert p.poll() == []  # nothing completes twice
    assert p.poll() == []
    assert in_queue(ep, sub.queue_url) == 0  # late notices about our handles are deleted
    assert ok.wait().source == "s3"
    assert bad.exception().failure_reason == REASON  # type: ignore[union-attr]


# -- wait / as_completed like concurrent.futures ------------------------------------------------


def test_first_completed_returns_at_once(ep: Any, clock: Any) -> None:
    invs = [handle(ep, n) for n in range(11, 14)]
    put(ep, invs[1].output_location)
    result = wait(invs, return_when="FIRST_COMPLETED",
                  poller=Poller(ep, clock=clock, sleep=clock.sleep))  # fmt: skip
    assert isinstance(result, WaitResult)
    assert result == ([invs[1]], [invs[0], invs[2]])
    assert clock.sleeps == []


def test_first_exception_returns_when_one_failed(ep: Any, clock: Any) -> None:
    import concurrent.futures

    invs = [handle(ep, n) for n in range(14, 18)]
    put(ep, invs[0].output_location)
    p = Poller(ep, clock=clock, sleep=clock.sleep, interval=5)
    # No failure: waits for all, here until the timeout.
    done, not_done = p.wait(invs, timeout=20, return_when=concurrent.futures.FIRST_EXCEPTION)
    assert (done, not_done) == ([invs[0]], invs[1:])
    assert clock.now == pytest.approx(1020)
    put(ep, invs[2].failure_location, b"{}")
    done, not_done = p.wait(invs, timeout=20, return_when="FIRST_EXCEPTION")
    assert (done, not_done) == ([invs[0], invs[2]], [invs[1], invs[3]])
    assert clock.now == pytest.approx(1020)  # found in the first round
    assert invs[2].exception() is not None


def test_all_completed_returns_the_rest_at_the_timeout(ep: Any, clock: Any) -> None:
    threads = threading.active_count()
    invs = [handle(ep, n) for n in range(18, 21)]
    put(ep, invs[0].output_location)
    seen: list[tuple[int, int]] = []
    p = Poller(ep, clock=clock, sleep=clock.sleep, interval=5)
    done, not_done = p.wait(invs, timeout=30, progress=lambda *a: seen.append(a))
    assert (done, not_done) == ([invs[0]], invs[1:])  # no exception, like concurrent.futures
    assert clock.now == pytest.approx(1030)
    assert seen == [(0, 3), (1, 3)]  # at the start, then as results arrive
    assert threading.active_count() == threads  # nothing left running
    with pytest.raises(AsyncTimeoutError) as info:  # as_completed raises, a TimeoutError
        list(as_completed(invs, timeout=5, poller=p))
    assert isinstance(info.value, TimeoutError)
    assert [h.inference_id for h in info.value.pending] == ["inf-19", "inf-20"]
    for inv in not_done:
        put(ep, inv.output_location)
    assert wait(not_done, poller=p) == (not_done, [])  # resume


def test_return_when_is_checked(ep: Any) -> None:
    with pytest.raises(InvalidInputError, match="return_when"):
        wait([handle(ep, 1)], return_when="WHENEVER")  # type: ignore[arg-type]


def test_the_poller_measures_time_on_a_monotonic_clock(ep: Any, clock: Any) -> None:
    import time

    assert Poller(ep).clock is time.monotonic
    assert Poller(ep)._retry().clock is time.monotonic  # the retry loop gets the same one
    assert Poller(ep).wall_clock is time.time
    # A wall clock that jumps back an hour does not stretch a deadline measured from it.
    wall = types.SimpleNamespace(now=2e9)
    inv = handle(ep, 21, deadline=2e9 + 12)

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        wall.now -= 3600

    p = Poller(ep, clock=clock, wall_clock=lambda: wall.now, sleep=sleep)
    with pytest.raises(AsyncTimeoutError):
        p.wait_one(inv)
    assert clock.now == pytest.approx(1012)


def test_notifications_are_received_and_deleted_in_batches(
    ep: Any, sub: Subscription, clock: Any, topics: tuple[str, str], requests: Requests
) -> None:
    invs = [handle(ep, n) for n in range(30, 55)]
    put_many([h.output_location for h in invs], b"{}")
    for inv in invs:
        publish(ep, topics[0], notification(inv))
    requests.watch(ep.client("sqs"))
    p = sub.poller(clock=clock, sleep=clock.sleep, wait_time_seconds=0, s3=False)
    p.track([*invs, handle(ep, 99)])
    found = p.poll()
    assert len(found) == 25  # one round drains the burst: full batches are followed at once
    assert requests.counts["ReceiveMessage"] == 3  # 10 + 10 + 5 messages
    assert requests.counts["DeleteMessageBatch"] == 3  # 10 per request
    assert in_queue(ep, sub.queue_url) == 0


def test_merging_what_two_sources_found() -> None:
    from smclient._asyncinference import Completion
    from smclient._asyncinference._registry import merge

    inv = handle(types.SimpleNamespace(name="async-ep"), 1)  # type: ignore[arg-type]
    failed = Completion(invocation=inv, succeeded=False, source="s3")
    told = Completion(invocation=inv, succeeded=False, source="notification",
                      failure_reason=REASON)  # fmt: skip
    output = Completion(invocation=inv, succeeded=True, source="s3", size=3)
    merged = merge(failed, told)
    assert (merged.source, merged.failure_reason) == ("s3", REASON)  # first source, the reason
    assert merge(told, failed) is told
    assert merge(failed, output) is output  # an output wins over a failure object
    assert merge(output, told) is output


def test_a_progress_bar_is_closed_when_wait_returns_early(
    ep: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    bars: list[Any] = []

    class FakeTqdm:
        def __init__(self, total: int, **_: Any) -> None:
            self.total, self.n, self.closed = total, 0, False
            bars.append(self)

        def update(self, count: int) -> None:
            self.n += count

        def close(self) -> None:
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm.auto", types.SimpleNamespace(tqdm=FakeTqdm))
    invs = [handle(ep, n) for n in range(60, 63)]
    put(ep, invs[0].output_location)
    p = Poller(ep, clock=clock, sleep=clock.sleep)
    done, _ = p.wait(invs, return_when="FIRST_COMPLETED", progress=True)
    assert done == [invs[0]]
    assert (bars[0].total, bars[0].n, bars[0].closed) == (3, 1, True)


def test_the_core_says_which_messages_to_delete() -> None:
    # Sans-I/O: SQS messages in, completions and the messages to delete out.
    inv = handle(types.SimpleNamespace(name="async-ep"), 70)  # type: ignore[arg-type]
    state = PollState()
    state.track([inv])
    ours, foreign = "arn:aws:sns:us-east-1:123456789012:ok", "arn:aws:sns:us-east-1:1:x"

    def message(body: str, topic: str = ours, received: int = 1) -> dict[str, Any]:
        envelope = {"Type": "Notification", "TopicArn": topic, "Message": body}
        attributes = {"ApproximateReceiveCount": str(received)}
        return {"Body": json.dumps(envelope), "ReceiptHandle": body[:8], "Attributes": attributes}

    test = json.dumps({"eventSource": "aws:sagemaker", "eventName": "TestNotification"})
    failed = message(notification(inv, REASON))
    other = message(notification(handle(types.SimpleNamespace(name="e"), 71)))  # type: ignore[arg-type]
    batch = [message(test), failed, message(notification(inv), foreign), other]
    found, delete = state.on_messages(batch, 0.0, topics=[ours], owned_queue=False, s3=True)
    assert [c.failure_reason for c in found] == [REASON]
    assert delete == [batch[0], failed]  # the test message and ours; the rest left alone
    # In a queue of our own, what nobody handles goes after 5 receives.
    stale = [message(notification(inv), foreign, received=5), {**other, "Attributes": {
        "ApproximateReceiveCount": "5"}}]  # fmt: skip
    _, delete = state.on_messages(stale, 0.0, topics=[ours], owned_queue=True, s3=True)
    assert delete == stale
    _, delete = state.on_messages(stale, 0.0, topics=[ours], owned_queue=True, s3=False)
    assert delete == stale[:1]  # without S3 a notice stays for a poller that may track it


def test_a_poller_learns_what_another_poller_found(ep: Any, clock: Any, requests: Requests) -> None:
    mine, theirs = (Poller(ep, clock=clock, sleep=clock.sleep) for _ in range(2))
    inv, other = handle(ep, 80), handle(ep, 81)
    mine.track([inv, other])
    assert mine.poll() == []  # its first S3 round: the next one is 5 s away
    theirs.track([inv])
    put(ep, inv.output_location)
    [found] = theirs.poll(s3_now=True)  # say, in another thread
    requests.watch(ep.client("s3"))
    [learned] = mine.poll()  # no S3 round due yet: nothing sent, and still it knows
    assert learned is found
    assert requests.counts == {}
    assert mine.pending == [other]
    assert mine.completion(inv) is found
