"""The asyncio engine of invoke_many (for AsyncEndpoint): window, order, per-item failures,
stop on error, rate limit with an injected clock and sleep, cancellation. The per-call
coroutine is a fake that answers from the body (the engine is transport-agnostic; the
threaded engine's tests cover the wire)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from smclient import InvocationResult, ModelError, RetryPolicy, ValidationError
from smclient._batch._aio import AsyncBatchRun
from smclient._batch._types import BatchItem


def ok(body: Any) -> InvocationResult:
    return InvocationResult(
        body=repr(body).encode(),
        content_type="text/plain",
        invoked_production_variant="AllTraffic",
        custom_attributes=None,
        request_id="r",
        attempts=1,
        elapsed=0.0,
    )


class Model:
    """Answers every item; ``hold`` maps bodies to events they wait for; ``fail`` to errors."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.calls = 0
        self.cancelled = 0
        self.waiting = 0
        self.hold: dict[Any, asyncio.Event] = {}
        self.fail: dict[Any, Exception] = {}

    async def __call__(self, item: BatchItem, policy: RetryPolicy) -> InvocationResult:
        self.calls += 1
        self.inside += 1
        self.most = max(self.most, self.inside)
        try:
            event = self.hold.get(item.body)
            if event is not None:
                self.waiting += 1
                await event.wait()
            await asyncio.sleep(0)  # let the others run
            if item.body in self.fail:
                raise self.fail[item.body]
            return ok(item.body)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.inside -= 1


def make(model: Model, items: Any, **kwargs: Any) -> AsyncBatchRun:
    settings: dict[str, Any] = {
        "retry": RetryPolicy(),
        "concurrency": 4,
        "window": None,
        "ordered": True,
        "stop_on_error": False,
        "rate_limit": None,
        "progress": None,
    }
    settings.update(kwargs)
    settings["window"] = settings["window"] or settings["concurrency"]
    return AsyncBatchRun(model, items, **settings)


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())  # type: ignore[arg-type]


def model_error() -> ModelError:
    return ModelError("boom", error_code="ModelError", http_status=424, original_status_code=500)


def test_results_in_input_order_even_when_the_head_finishes_last() -> None:
    async def main() -> list[int]:
        model = Model()
        model.hold[0] = release = asyncio.Event()
        seen = []
        async with make(model, range(8)) as batch:
            asyncio.get_running_loop().call_later(0, release.set)
            seen = [r.index async for r in batch]
        assert model.most == 4
        return seen

    assert run(main) == list(range(8))


def test_completion_order_on_request() -> None:
    async def main() -> list[int]:
        model = Model()
        model.hold[0] = release = asyncio.Event()
        seen = []
        async for result in make(model, range(4), ordered=False):
            seen.append(result.index)
            if len(seen) == 3:
                release.set()
        return seen

    seen = run(main)
    assert sorted(seen[:3]) == [1, 2, 3]
    assert seen[3] == 0


@pytest.mark.parametrize(("concurrency", "window"), [(1, None), (3, None), (2, 5)])
def test_async_and_sync_inputs_are_read_lazily(concurrency: int, window: int | None) -> None:
    async def main() -> tuple[list[int], int, int]:
        read = 0

        async def records() -> AsyncIterator[int]:
            nonlocal read
            for i in range(1_000_000):
                read += 1
                yield i

        model = Model()
        ahead = []
        batch = make(model, records(), concurrency=concurrency, window=window)
        async for result in batch:
            ahead.append(read - result.index)
            if result.index == 20:
                break
        await batch.aclose()
        return ahead, read, model.most

    ahead, read, most = run(main)
    assert max(ahead) <= (window or concurrency)
    assert read <= 21 + (window or concurrency)
    assert most <= concurrency


def test_failures_stay_in_place_with_their_types() -> None:
    async def main() -> tuple[list[Any], Any]:
        model = Model()
        model.fail = {2: model_error(), 5: ValidationError("no", error_code="ValidationError")}
        batch = make(model, range(8))
        results = [r async for r in batch]
        return results, batch.summary

    results, summary = run(main)
    assert [r.index for r in results] == list(range(8))
    assert isinstance(results[2].error, ModelError)
    assert isinstance(results[5].error, ValidationError)
    assert [r.ok for r in results].count(True) == 6
    assert (summary.succeeded, summary.failed) == (6, 2)
    assert summary.failures == {"ModelError": 1, "ValidationError": 1}
    assert summary.finished


@pytest.mark.parametrize("ordered", [True, False])
def test_stop_on_error(ordered: bool) -> None:
    async def main() -> tuple[list[int], int]:
        model = Model()
        model.fail = {5: model_error()}
        seen: list[int] = []

        async def consume() -> None:
            async for result in make(model, range(10_000), ordered=ordered, stop_on_error=True):
                seen.append(result.index)

        with pytest.raises(ModelError):
            await consume()
        return seen, model.calls

    seen, calls = run(main)
    if ordered:
        assert seen == [0, 1, 2, 3, 4]
    assert calls <= 5 + 4 + 1


def test_rate_limit_with_an_injected_clock_and_sleep() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> None:
        batch = make(Model(), range(8), rate_limit=10.0, clock=lambda: 5.0, sleep=sleep)
        assert all([r.ok async for r in batch])

    run(main)
    assert sorted(round(w, 6) for w in waits) == [round(0.1 * k, 6) for k in range(1, 8)]


def test_cancelling_the_consumer_cancels_and_awaits_every_call() -> None:
    async def main() -> tuple[Model, AsyncBatchRun]:
        model = Model()
        stuck = asyncio.Event()  # never set: items 3.. hang until cancelled
        for i in range(3, 100):
            model.hold[i] = stuck
        batch = make(model, range(100))

        async def consume() -> None:
            async for _ in batch:
                pass

        task = asyncio.create_task(consume())
        while model.waiting < 4:  # three finished, four stuck in flight
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == []  # nothing left running
        return model, batch

    model, batch = run(main)
    assert model.inside == 0
    assert model.cancelled == 4
    assert batch.summary.cancelled == 4
    assert batch.summary.succeeded == 3
    assert batch.summary.finished


def test_aclose_before_starting_sends_nothing() -> None:
    async def main() -> Model:
        model = Model()
        batch = make(model, range(10))
        await batch.aclose()
        assert batch.summary.finished
        return model

    assert run(main).calls == 0


# -- ainvoke_many: the facade glue, over an asyncio adapter of a real Endpoint ------------


class AsyncAdapter:
    """Stands in for AsyncEndpoint: the same attributes, invoke run in a thread."""

    def __init__(self, endpoint: Any) -> None:
        self._endpoint = endpoint
        self.config = endpoint.config
        self.retry = endpoint.retry

    async def invoke(self, body: Any, **options: Any) -> InvocationResult:
        result: InvocationResult = await asyncio.to_thread(self._endpoint.invoke, body, **options)
        return result


class AsyncHandleAdapter:
    def __init__(self, endpoint: AsyncAdapter, target_model: str) -> None:
        self.endpoint = endpoint
        self.target_model = target_model

    async def invoke(self, body: Any, **options: Any) -> InvocationResult:
        return await self.endpoint.invoke(body, target_model=self.target_model, **options)


def test_ainvoke_many_against_the_local_endpoint() -> None:
    import json

    from smclient._batch import ainvoke_many
    from smclient.local import HandlerError, LocalEndpoint

    def predict(body: bytes, content_type: str | None, accept: str | None) -> bytes:
        x = json.loads(body)["x"]
        if x == 3:
            raise HandlerError("no", 422)
        return json.dumps({"y": 2 * x}).encode()

    async def main(ep: Any) -> list[Any]:
        run = ainvoke_many(
            AsyncAdapter(ep),
            ({"x": x} for x in range(6)),
            concurrency=3,
            window=None,
            ordered=True,
            stop_on_error=False,
            rate_limit=None,
            progress=None,
            content_type=None,
            accept=None,
            custom_attributes="trace=1",
            codec=None,
            retry=RetryPolicy.never(),
        )
        return [r async for r in run]

    with LocalEndpoint(predict) as server, server.endpoint() as ep:
        results = asyncio.run(main(ep))
    assert [r.index for r in results] == list(range(6))
    assert [r.unwrap().json()["y"] for r in results if r.ok] == [0, 2, 4, 8, 10]
    assert isinstance(results[3].error, ModelError)
    assert results[3].error.original_status_code == 422


def test_ainvoke_many_on_a_model_handle_names_its_model() -> None:
    from smclient import InvalidInputError
    from smclient._batch import ainvoke_many
    from smclient.testing import ScriptedRuntime

    async def main(ep: Any) -> list[Any]:
        handle = AsyncHandleAdapter(AsyncAdapter(ep), "m-1.tar.gz")
        run = ainvoke_many(
            handle,
            [b"a", BatchItem(b"b", target_model="m-2.tar.gz")],
            concurrency=1,
            window=None,
            ordered=True,
            stop_on_error=False,
            rate_limit=None,
            progress=None,
            content_type="text/plain",
            accept=None,
            custom_attributes=None,
            codec=None,
            retry=None,
        )
        return [r async for r in run]

    with ScriptedRuntime() as server, server.endpoint() as ep:
        first, second = asyncio.run(main(ep))
        assert first.ok
        assert isinstance(second.error, InvalidInputError)
        (request,) = server.requests
        assert request.headers["x-amzn-sagemaker-target-model"] == "m-1.tar.gz"
        assert request.headers["content-type"] == "text/plain"
