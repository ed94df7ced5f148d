"""The Poller's S3 watching: few LIST requests, HEAD fallback, failures, deadlines, resume."""
# ruff: noqa: F811  (fixtures imported from tests/_async_helpers.py)

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from smclient import CSV, JSON
from smclient._asyncinference import (
    AsyncInferenceError,
    AsyncInvocation,
    AsyncTimeoutError,
    Poller,
    S3AccessDeniedError,
    S3Object,
    as_completed,
    wait,
)

from ._async_helpers import (  # noqa: F401
    FakeEndpoint,
    FakeS3,
    Requests,
    empty_bucket,
    failures,
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


def put(ep: Any, location: str, body: bytes = b"{}", content_type: str | None = None) -> None:
    bucket, _, key = location.removeprefix("s3://").partition("/")
    extra = {"ContentType": content_type} if content_type else {}
    ep.client("s3").put_object(Bucket=bucket, Key=key, Body=body, **extra)


def poller(ep: Any, clock: Any, **kwargs: Any) -> Poller:
    return Poller(ep, clock=clock, sleep=clock.sleep, **kwargs)


def test_a_round_over_many_pending_costs_one_list_per_folder(
    ep: Any, clock: Any, requests: Requests
) -> None:
    invs = [handle(ep, n) for n in range(300)]
    for inv in invs[:40]:
        put(ep, inv.output_location)
    for inv in invs[40:45]:
        put(ep, inv.failure_location or "")
    requests.watch(ep.client("s3"))
    p = poller(ep, clock)
    p.track(invs)
    found = p.poll(s3_now=True)
    assert requests.counts == {"ListObjectsV2": 2}  # results/ and failures/, not 600 HEADs
    assert sum(c.succeeded for c in found) == 40
    assert sum(not c.succeeded for c in found) == 5
    assert len(p.pending) == 255
    p.poll(s3_now=True)
    assert requests.counts == {"ListObjectsV2": 4}


def test_listing_pages_are_followed(ep: Any, clock: Any) -> None:
    invs = [handle(ep, n) for n in range(25)]
    done_keys = [f"results/{n:05d}.out" for n in range(23)]
    fake = FakeS3([*done_keys, "results/other.out"], page_size=10)
    p = Poller(FakeEndpoint(fake), clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    p.track(invs)
    assert len(p.poll(s3_now=True)) == 23
    assert fake.calls["ListObjectsV2"] == 3 + 1  # three pages of results/, one of failures/


def test_denied_listing_falls_back_to_head(
    ep: Any, clock: Any, requests: Requests, failures: Any
) -> None:
    failures(ep.client("s3"), "ListObjectsV2", 403, "AccessDenied")
    invs = [handle(ep, n) for n in range(3)]
    put(ep, invs[0].output_location)
    requests.watch(ep.client("s3"))
    p = poller(ep, clock)
    p.track(invs)
    [done] = p.poll(s3_now=True)
    assert done.invocation == invs[0]
    assert requests.counts["HeadObject"] == 6  # each output and failure object
    p.poll(s3_now=True)
    assert requests.counts["ListObjectsV2"] == 2  # not asked again: HEAD from now on
    assert requests.counts["HeadObject"] == 6 + 4


def test_denied_head_is_a_clear_permission_error(ep: Any, clock: Any, failures: Any) -> None:
    failures(ep.client("s3"), "ListObjectsV2", 403, "AccessDenied")
    failures(ep.client("s3"), "HeadObject", 403, "403")
    p = poller(ep, clock)
    p.track([handle(ep, 1)])
    with pytest.raises(S3AccessDeniedError) as info:
        p.poll(s3_now=True)
    assert info.value.operation == "HeadObject"
    assert "s3:ListBucket" in str(info.value)
    assert info.value.location.startswith("s3://out-bucket/")
    assert pickle.loads(pickle.dumps(info.value)).permission == info.value.permission


def test_result_decodes_with_the_codec_or_content_type(ep: Any, clock: Any) -> None:
    a, b, c = (handle(ep, n) for n in range(3))
    put(ep, a.output_location, b'{"score": 1}', "application/json")
    put(ep, b.output_location, b"1,2\n3,4\n", "text/csv")
    put(ep, c.output_location, b"\x00raw")
    p = poller(ep, clock)
    assert a.result(timeout=10, poller=p) == {"score": 1}
    assert b.result(timeout=10, poller=p, codec=CSV) == [["1", "2"], ["3", "4"]]
    assert c.result(timeout=10, poller=p) == b"\x00raw"
    ref = c.result(timeout=10, poller=p, download=False)
    assert ref == S3Object("out-bucket", "results/00002.out", 4)
    assert ref.url == c.output_location
    assert p.completion(a) is not None
    assert p.completion(a).source == "s3"  # type: ignore[union-attr]


def test_failure_raises_with_the_failure_object(ep: Any, clock: Any) -> None:
    inv = handle(ep, 7)
    doc = {"errorCode": "ModelError", "failureReason": "ClientError: Received server error (500)"}
    put(ep, inv.failure_location or "", json.dumps(doc).encode())
    p = poller(ep, clock)
    error = inv.exception(timeout=10, poller=p)
    assert isinstance(error, AsyncInferenceError)
    assert error.error_code == "ModelError"
    assert error.failure_content == json.dumps(doc).encode()
    assert "Received server error (500)" in str(error)
    with pytest.raises(AsyncInferenceError) as info:
        inv.result(timeout=10, poller=p)
    assert info.value.inference_id == "inf-7"
    assert pickle.loads(pickle.dumps(info.value)).failure_location == inv.failure_location


def test_output_wins_over_a_failure_object(ep: Any, clock: Any) -> None:
    inv = handle(ep, 3, failure_folder="results")
    put(ep, inv.output_location, b"ok")
    put(ep, inv.failure_location or "", b"stale")
    assert inv.result(timeout=10, poller=poller(ep, clock)) == b"ok"


def test_timeout_lists_pending_and_resume_finds_them(ep: Any, clock: Any) -> None:
    invs = [handle(ep, n) for n in range(3)]
    put(ep, invs[0].output_location)
    p = poller(ep, clock, interval=5)
    with pytest.raises(AsyncTimeoutError) as info:
        list(p.as_completed(invs, timeout=30))
    error = info.value
    assert [i.inference_id for i in error.pending] == ["inf-1", "inf-2"]
    assert error.done == 1
    assert "inf-1" in str(error)
    assert "from_json" in str(error)
    assert sum(clock.sleeps) == pytest.approx(30)  # fake time only
    assert all(s <= 5 for s in clock.sleeps)
    saved = [h.to_json() for h in error.pending]
    for inv in invs[1:]:
        put(ep, inv.output_location)
    resumed = [AsyncInvocation.from_json(text, endpoint=ep) for text in saved]
    done, not_done = wait(resumed, timeout=10, poller=poller(ep, clock))
    assert [h.inference_id for h in done] == ["inf-1", "inf-2"]
    assert not_done == []


def test_default_deadline_comes_from_the_handles(ep: Any, clock: Any) -> None:
    inv = handle(ep, 1, deadline=clock.now + 12)
    with pytest.raises(AsyncTimeoutError):
        poller(ep, clock).wait_one(inv)
    assert clock.now == pytest.approx(1012)


def test_timeout_zero_still_looks_once(ep: Any, clock: Any) -> None:
    inv = handle(ep, 1)
    put(ep, inv.output_location)
    assert poller(ep, clock).wait_one(inv, timeout=0).succeeded
    assert clock.sleeps == []


def test_as_completed_yields_in_finishing_order(ep: Any, clock: Any) -> None:
    invs = [handle(ep, n) for n in range(3)]
    put(ep, invs[2].output_location)
    p = poller(ep, clock, interval=1)
    order = []
    iterator = as_completed(invs, timeout=100, poller=p)
    first = next(iterator)
    order.append(first.invocation.inference_id)
    put(ep, invs[0].output_location)
    order.append(next(iterator).invocation.inference_id)
    put(ep, invs[1].failure_location or "", b"{}")
    last = next(iterator)
    order.append(last.invocation.inference_id)
    assert order == ["inf-2", "inf-0", "inf-1"]
    assert not last.succeeded
    with pytest.raises(StopIteration):
        next(iterator)


def test_done_checks_without_waiting(ep: Any, clock: Any) -> None:
    inv = handle(ep, 4)
    p = poller(ep, clock)
    assert not inv.done(poller=p)
    put(ep, inv.output_location)
    assert inv.done(poller=p)
    assert clock.sleeps == []


def test_forget_drops_state(ep: Any, clock: Any) -> None:
    inv = handle(ep, 4)
    put(ep, inv.output_location)
    p = poller(ep, clock)
    p.wait([inv], timeout=1)
    p.forget([inv])
    assert p.completion(inv) is None
    assert p.pending == []


def test_invocations_of_moto_endpoints_finish(ep: Any, clock: Any) -> None:
    from smclient._asyncinference import submit
    from smclient.testing import MotoAsyncResult, queue_moto_async_results

    empty_bucket(ep, "in-bucket")
    queue_moto_async_results([MotoAsyncResult('{"a": 1}'), MotoAsyncResult("boom", True)])
    ok = submit(ep, {"x": 1}, input_prefix="s3://in-bucket/in", codec=JSON)
    bad = submit(ep, {"x": 2}, input_prefix="s3://in-bucket/in")
    done, _ = wait([ok, bad], timeout=5, poller=poller(ep, clock))
    assert done[0].result() == {"a": 1}
    with pytest.raises(AsyncInferenceError) as info:
        done[1].result()
    assert info.value.failure_content == b"boom"


def test_poller_settings_are_checked(ep: Any) -> None:
    from smclient import InvalidInputError

    with pytest.raises(InvalidInputError):
        Poller(ep, wait_time_seconds=21)
    with pytest.raises(InvalidInputError):
        Poller(ep, interval=0)
    with pytest.raises(InvalidInputError):
        Poller(ep, s3=False)


def test_few_pending_in_a_big_folder_use_head(ep: Any, clock: Any) -> None:
    invs = [handle(ep, n) for n in range(40)]
    old = [f"results/00{n:03d}.old" for n in range(50)]  # share the pending keys' prefix
    fake = FakeS3([*old, "results/00000.out"], page_size=10)
    p = Poller(FakeEndpoint(fake), clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    p.track(invs)
    assert len(p.poll(s3_now=True)) == 1
    assert fake.calls == {"ListObjectsV2": 6 + 1}  # 51 objects in pages of 10, failures/ once
    p.forget(invs[2:])  # one left waiting in a folder that took 6 pages to list
    fake.calls.clear()
    assert p.poll(s3_now=True) == []
    assert fake.calls == {"HeadObject": 1, "ListObjectsV2": 1}  # HEAD beats 6 pages


def test_the_deadline_gets_one_last_look(ep: Any, clock: Any) -> None:
    inv = handle(ep, 1)

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= 1010:
            put(ep, inv.output_location)  # written during the last pause

    p = Poller(ep, clock=clock, sleep=sleep, interval=5)
    assert p.wait_one(inv, timeout=10).succeeded
    assert clock.now == 1010


def test_timeout_errors_pickle_with_their_handles(ep: Any, clock: Any) -> None:
    with pytest.raises(AsyncTimeoutError) as info:
        poller(ep, clock).wait_one(handle(ep, 1), timeout=1)
    copy = pickle.loads(pickle.dumps(info.value))
    assert [h.inference_id for h in copy.pending] == ["inf-1"]
    assert copy.pending[0].endpoint.name == "async-ep"


def test_a_denied_download_is_a_permission_error(ep: Any, clock: Any, failures: Any) -> None:
    inv = handle(ep, 5)
    put(ep, inv.output_location)
    completion = poller(ep, clock).wait_one(inv, timeout=1)
    failures(ep.client("s3"), "GetObject", 403, "AccessDenied")
    with pytest.raises(S3AccessDeniedError) as info:
        completion.result()
    assert info.value.operation == "GetObject"
    assert info.value.location == inv.output_location


def test_progress_is_reported_as_results_arrive(ep: Any, clock: Any) -> None:
    invs = [handle(ep, n) for n in range(3)]
    put(ep, invs[0].output_location)
    seen: list[tuple[int, int]] = []
    p = poller(ep, clock, interval=1)
    iterator = p.as_completed(invs, timeout=100, progress=lambda *a: seen.append(a))
    next(iterator)
    for inv in invs[1:]:
        put(ep, inv.output_location)
    list(iterator)
    # Shown at the start, then as results arrive; the last two may land in one S3 round or
    # in two (a loaded machine can split them), so only the order and the ends are pinned.
    assert seen[:2] == [(0, 3), (1, 3)]
    assert seen[-1] == (3, 3)
    assert seen in ([(0, 3), (1, 3), (3, 3)], [(0, 3), (1, 3), (2, 3), (3, 3)])


def test_progress_bar_is_silent_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    from smclient._asyncinference._progress import reporter

    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # as if tqdm were not installed
    assert reporter(True, io.StringIO()) is None
    assert reporter(False) is None

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    bar = reporter(True, out)
    assert bar is not None
    bar(1, 4)
    bar(4, 4)
    assert out.getvalue().endswith("[" + "#" * 30 + "] 4/4 async results\n")
    assert "1/4" in out.getvalue()


def test_progress_uses_tqdm_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from smclient._asyncinference._progress import reporter

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
    bar = reporter(True)
    assert bar is not None
    bar(2, 5)
    bar(5, 5)
    assert (bars[0].total, bars[0].n, bars[0].closed) == (5, 5, True)


class FlakyS3(FakeS3):
    """``FakeS3`` whose first ``failures`` listings answer 503 (retried by default)."""

    def __init__(self, keys: list[str], failures: int) -> None:
        super().__init__(keys)
        self.failures = failures

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        if self.failures > 0:
            self.failures -= 1
            self.calls["ListObjectsV2"] += 1
            import botocore.exceptions

            error = {"Error": {"Code": "ServiceUnavailable", "Message": "slow down"},
                     "ResponseMetadata": {"HTTPStatusCode": 503}}  # fmt: skip
            raise botocore.exceptions.ClientError(error, "ListObjectsV2")  # type: ignore[arg-type]
        return super().list_objects_v2(**kwargs)


def test_request_retries_wait_with_the_pollers_sleep(ep: Any, clock: Any) -> None:
    inv = handle(ep, 1)
    fake = FlakyS3(["results/00001.out"], failures=2)
    p = Poller(FakeEndpoint(fake), clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert p.wait_one(inv, timeout=100).succeeded
    assert len(clock.sleeps) == 2  # the two retry delays, not real sleeping
    assert clock.sleeps[0] <= 0.5  # backoff ceilings 0.5 s, then 1 s (full jitter)
    assert clock.sleeps[1] <= 1.0


def test_request_retries_stop_at_the_deadline(ep: Any, clock: Any) -> None:
    from smclient import RetriesExhaustedError

    fake = FlakyS3([], failures=100)
    p = Poller(FakeEndpoint(fake), clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    with pytest.raises(RetriesExhaustedError):
        p.wait_one(handle(ep, 1), timeout=0)  # only the last look: no time to retry
    assert fake.calls["ListObjectsV2"] == 1
    assert clock.sleeps == []


def test_a_listing_that_repeats_its_token_ends() -> None:
    from smclient._asyncinference._s3 import find
    from smclient._retry import RetryPolicy

    class Looping:
        calls = 0

        def list_objects_v2(self, **params: Any) -> dict[str, Any]:
            self.calls += 1
            assert self.calls < 10, "listed forever"
            return {
                "Contents": [{"Key": "out/a.out", "Size": 3}],
                "IsTruncated": True,
                "NextContinuationToken": "same",
            }

    s3 = Looping()
    found, pages = find(
        s3, "bucket", "out/", {"out/a.out"}, endpoint="e", policy=RetryPolicy.never()
    )
    assert found == {"out/a.out": 3}
    assert pages == 2
