"""AsyncEndpoint on loopback servers the tests start (a scripted runtime; an asyncio server
for 1,000 concurrent calls) and on moto's in-process mock: results and errors equal the
sync API's, cold starts wait with asyncio.sleep, streams split like the sync ones,
sessions close even when cancelled, pools are per loop. No real sleeping: retry waits are
recorded, stalls are bounded by short read timeouts."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from smclient import (
    AsyncEndpoint,
    ClientConfig,
    ConnectionClosedError,
    Endpoint,
    InvalidInputError,
    ModelError,
    ModelStreamError,
    RetryPolicy,
    SessionState,
    StreamInterruptedError,
    ValidationError,
)
from smclient.local.server import _eventstream as es
from smclient.testing import MotoResult, Reply, ScriptedRuntime, queue_moto_results

pytestmark = pytest.mark.usefixtures("aws_env")

SID = "sess-1"


def _ep(runtime: ScriptedRuntime, **kwargs: Any) -> AsyncEndpoint:
    kwargs.setdefault("config", ClientConfig(sign_requests=False))
    return AsyncEndpoint("scripted", region="us-east-1", endpoint_url=runtime.url, **kwargs)


def test_invoke_returns_what_the_sync_api_returns(runtime: ScriptedRuntime) -> None:
    async def main() -> Any:
        async with _ep(runtime) as ep:
            assert await ep.transport() == "fast"
            return await ep.invoke({"x": 1}, custom_attributes="c=1", inference_id="i-1")

    result = asyncio.run(main())
    sync = runtime.endpoint().invoke({"x": 1}, custom_attributes="c=1", inference_id="i-1")
    assert result.body == sync.body == b'{"x":1}'
    assert (result.content_type, result.invoked_production_variant, result.attempts) == (
        sync.content_type,
        sync.invoked_production_variant,
        1,
    )
    first, second = runtime.requests
    assert first.path == second.path == "/endpoints/scripted/invocations"
    drop = {"amz-sdk-invocation-id", "x-amz-date", "host"}
    assert {k: v for k, v in first.headers.items() if k not in drop} == {
        k: v for k, v in second.headers.items() if k not in drop
    }


def test_errors_are_the_sync_apis_errors(runtime: ScriptedRuntime) -> None:
    runtime.queue(Reply.error("ValidationError", 400, "nope"), Reply.model_error(500, "bad"))

    async def main() -> None:
        async with _ep(runtime) as ep:
            with pytest.raises(ValidationError) as info:
                await ep.invoke(b"x")
            assert info.value.http_status == 400
            assert info.value.request_id
            with pytest.raises(ModelError) as model:
                await ep.invoke(b"x")
            assert model.value.original_status_code == 500
            with pytest.raises(InvalidInputError):
                await ep.invoke(b"x", target_model=" leading space")

    asyncio.run(main())
    assert len(runtime.requests) == 2  # the bad input never left


def test_cold_start_retries_wait_with_asyncio_sleep(
    runtime: ScriptedRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded(delay: float, *args: Any) -> Any:
        waits.append(delay)
        return await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", recorded)
    runtime.queue(Reply.model_not_ready("m.tar.gz"), Reply.model_not_ready("m.tar.gz"))
    policy = RetryPolicy(random=lambda: 0.5)

    async def main() -> Any:
        async with _ep(runtime, retry=policy) as ep:
            return await ep.model("m.tar.gz").invoke(b"hi")

    result = asyncio.run(main())
    assert result.attempts == 3
    assert result.body == b"hi"
    assert waits[:2] == [0.25, 0.5]  # the policy's backoff, awaited, never time.sleep
    assert [r.headers["x-amzn-sagemaker-target-model"] for r in runtime.requests] == [
        "m.tar.gz"
    ] * 3


def _event_stream(*messages: bytes) -> Reply:
    return Reply.ok(b"".join(messages), content_type="application/vnd.amazon.eventstream")


def test_stream_lines_json_sse_and_text(runtime: ScriptedRuntime) -> None:
    parts = [b'{"tok', b'en": "h\xc3', b'\xa9"}\n{"token": 2}\n', b'{"token": 3}']
    sse = [b'data: {"a"', b": 1}\n\nda", b"ta: [DONE]\n\n"]
    runtime.queue(
        _event_stream(*map(es.payload_part, parts)),
        _event_stream(*map(es.payload_part, parts)),
        _event_stream(*map(es.payload_part, sse)),
        _event_stream(*map(es.payload_part, sse)),
    )

    async def main() -> None:
        async with _ep(runtime) as ep:
            async with ep.stream(b"x", accept="application/jsonlines") as s:
                assert [v async for v in s.json_lines()] == [
                    {"token": "hé"},
                    {"token": 2},
                    {"token": 3},
                ]
                assert s.bytes_received == len(b"".join(parts))
                assert s.chunks_received == 4
                assert s.attempts == 1
            async with ep.stream(b"x") as s:
                assert [line async for line in s.lines()] == [
                    '{"token": "hé"}',
                    '{"token": 2}',
                    '{"token": 3}',
                ]
            async with ep.stream(b"x") as s:
                assert [e.json() async for e in s.sse()] == [{"a": 1}]
            s = await ep.stream(b"x")
            try:
                assert await s.text() == 'data: {"a": 1}\n\ndata: [DONE]\n\n'
            finally:
                await s.aclose()

    asyncio.run(main())
    assert runtime.requests[0].headers["x-amzn-sagemaker-accept"] == "application/jsonlines"


def test_stream_errors_keep_their_meaning(runtime: ScriptedRuntime) -> None:
    runtime.queue(
        _event_stream(es.internal_stream_failure("early")),
        _event_stream(es.payload_part(b"ok")),
        _event_stream(
            es.payload_part(b"partial "),
            es.model_stream_error("slow", "ModelInvocationTimeExceeded"),
        ),
    )

    async def main() -> None:
        async with _ep(runtime) as ep:
            async with ep.stream(b"x") as s:  # the failure before any byte was retried
                assert [c async for c in s] == [b"ok"]
                assert s.attempts == 2
            received: list[bytes] = []

            async def read_all() -> None:
                async with ep.stream(b"x") as s:
                    async for chunk in s:
                        received.append(chunk)

            with pytest.raises(ModelStreamError) as info:
                await read_all()
            assert received == [b"partial "]
            assert info.value.stream_error_code == "ModelInvocationTimeExceeded"
            assert info.value.bytes_received == 8

    asyncio.run(main())


def test_a_cut_stream_is_a_typed_error() -> None:
    """A server that promises 1,000 bytes and closes after one event (raw socket)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    event = es.payload_part(b"one\n")

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
            b"Content-Length: 1000\r\n\r\n" + event
        )
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    async def main() -> None:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        async with AsyncEndpoint(
            "e", endpoint_url=url, config=ClientConfig(sign_requests=False)
        ) as ep:
            lines: list[str] = []

            async def read_all() -> None:
                async with ep.stream(b"x") as s:
                    async for line in s.lines():
                        lines.append(line)

            with pytest.raises(StreamInterruptedError) as info:
                await read_all()
            assert lines == ["one"]
            assert info.value.bytes_received == 4

    try:
        asyncio.run(main())
    finally:
        thread.join(5)
        listener.close()


def _opened() -> Reply:
    return Reply.ok(
        b"{}", headers={"X-Amzn-SageMaker-New-Session-Id": f"{SID}; Expires=2099-01-01T00:00:00Z"}
    )


def _closed() -> Reply:
    return Reply.ok(b"{}", headers={"X-Amzn-SageMaker-Closed-Session-Id": SID})


def test_session_open_invoke_close(runtime: ScriptedRuntime) -> None:
    runtime.queue(_opened(), Reply.ok(b"answer"), _closed())

    async def main() -> None:
        async with _ep(runtime) as ep:
            async with ep.session(open_body={"doc": "d"}) as s:
                assert s.id == SID
                assert (await s.invoke({"q": 1})).body == b"answer"
            assert s.state is SessionState.CLOSED

    asyncio.run(main())
    ids = [r.headers.get("x-amzn-sagemaker-session-id") for r in runtime.requests]
    assert ids == ["NEW_SESSION", SID, SID]
    assert b"CLOSE" in runtime.requests[2].body


def test_a_cancelled_session_block_still_closes(runtime: ScriptedRuntime) -> None:
    runtime.queue(_opened(), _closed())

    async def main() -> None:
        inside = asyncio.Event()
        async with _ep(runtime) as ep:

            async def work() -> None:
                async with ep.session() as s:
                    assert s.state is SessionState.OPEN
                    inside.set()
                    await asyncio.Event().wait()  # until cancelled

            task = asyncio.ensure_future(work())
            await inside.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    ids = [r.headers.get("x-amzn-sagemaker-session-id") for r in runtime.requests]
    assert ids == ["NEW_SESSION", SID]
    assert b"CLOSE" in runtime.requests[1].body


def test_cancelling_an_invoke_closes_its_connection_and_the_endpoint_still_works(
    runtime: ScriptedRuntime,
) -> None:
    runtime.queue(Reply.stall())

    async def main() -> None:
        async with _ep(runtime) as ep:
            task = asyncio.ensure_future(ep.invoke(b"stalled"))
            while not runtime.requests:
                await asyncio.sleep(0.01)  # the request reached the server
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            pool = ep.requester.pools.for_loop(10)
            assert pool.idle == []  # the connection with an answer pending was not kept
            assert (await ep.invoke(b"after")).body == b"after"

    asyncio.run(main())


def test_a_dropped_connection_is_typed(runtime: ScriptedRuntime) -> None:
    runtime.queue(Reply.drop())

    async def main() -> None:
        async with _ep(runtime, retry=RetryPolicy.never()) as ep:
            with pytest.raises(ConnectionClosedError):
                await ep.invoke(b"x")

    asyncio.run(main())


class AsyncServer:
    """An asyncio HTTP/1.1 server in its own thread answering every request after
    ``latency`` seconds (keep-alive); counts requests and peak concurrency."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.count = 0
        self.active = 0
        self.peak = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=2048)
        )
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        ready.set()
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                body = await reader.readexactly(length)
                self.count += 1
                self.active += 1
                self.peak = max(self.peak, self.active)
                await asyncio.sleep(self.latency)
                self.active -= 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def async_server() -> Iterator[AsyncServer]:
    server = AsyncServer(latency=0.2)
    yield server
    server.close()


def test_a_thousand_concurrent_invokes_on_one_loop(async_server: AsyncServer) -> None:
    async def main() -> list[Any]:
        async with AsyncEndpoint(
            "e", endpoint_url=async_server.url, config=ClientConfig(sign_requests=False)
        ) as ep:
            return await asyncio.gather(*(ep.invoke(b"%d" % i) for i in range(1000)))

    results = asyncio.run(main())
    assert [r.body for r in results] == [b"%d" % i for i in range(1000)]
    assert async_server.count == 1000
    assert (
        async_server.peak > 100
    )  # they overlapped: not one at a time (the server holds each 200 ms)


def test_two_loops_in_two_threads_share_one_endpoint(runtime: ScriptedRuntime) -> None:
    ep = _ep(runtime)
    results: list[bytes] = []

    def in_thread(tag: bytes) -> None:
        async def main() -> None:
            for _ in range(3):
                results.append((await ep.invoke(tag)).body)
            await ep.requester.pools.aclose()

        asyncio.run(main())

    threads = [threading.Thread(target=in_thread, args=(t,)) for t in (b"a", b"b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [b"a"] * 3 + [b"b"] * 3
    ep.sync.close()


def test_moto_mock_is_honoured_through_the_boto3_client_in_a_thread() -> None:
    async def main() -> Any:
        ep = AsyncEndpoint("ep-1", region="us-east-1")
        with mock_aws():
            queue_moto_results([MotoResult("from moto")])
            assert await ep.transport() == "boto3"
            result = await ep.invoke(b"x")
        await ep.aclose()
        return result

    assert asyncio.run(main()).text() == "from moto"


def test_same_constructor_checks_as_endpoint() -> None:
    with pytest.raises(InvalidInputError):
        AsyncEndpoint("bad name!")
    with pytest.raises(InvalidInputError):
        AsyncEndpoint("ok", endpoint_url="not a url")
    ep = AsyncEndpoint("ok", region="eu-west-1")
    assert (ep.config, ep.retry, ep.region) == (
        Endpoint("ok").config,
        Endpoint("ok").retry,
        "eu-west-1",
    )


def test_submit_and_wait_async_on_moto() -> None:
    """moto writes the async result at once; the sync poller finds it, run in a thread."""
    from smclient import as_completed_async, wait_async
    from smclient.testing import MotoAsyncResult, queue_moto_async_results

    async def main() -> None:
        with mock_aws():
            async with AsyncEndpoint("async-ep", region="us-east-1") as ep:
                ep.client("s3").create_bucket(Bucket="in-bucket")
                queue_moto_async_results(
                    [MotoAsyncResult('{"ok": 1}'), MotoAsyncResult('{"ok": 2}')]
                )
                first = await ep.submit(input_location="s3://in-bucket/a.json")
                second = await ep.submit(input_location="s3://in-bucket/b.json")
                done, not_done = await wait_async([first, second], timeout=30)
                assert (done, not_done) == ([first, second], [])
                # No codec and no JSON content type on moto's object: the bytes as written.
                assert sorted(json.loads(h.result())["ok"] for h in done) == [1, 2]
                seen = [c.invocation async for c in as_completed_async([first, second], timeout=30)]
                assert sorted(h.inference_id for h in seen) == sorted(
                    [first.inference_id, second.inference_id]
                )

    asyncio.run(main())


def test_an_async_endpoint_pickles_without_its_pools(runtime: ScriptedRuntime) -> None:
    import pickle

    async def main() -> None:
        async with _ep(runtime) as ep:
            await ep.invoke(b"x")
            copy = pickle.loads(pickle.dumps(ep))
            assert (copy.name, copy.endpoint_url, copy.config) == (
                ep.name,
                ep.endpoint_url,
                ep.config,
            )
            assert (await copy.invoke(b"again")).body == b"again"
            await copy.aclose()

    asyncio.run(main())


def test_the_boto3_transport_in_a_thread_streams_and_holds_sessions(
    runtime: ScriptedRuntime,
) -> None:
    """transport='boto3' (what moto, a Stubber or a handler selects): the same answers."""
    runtime.queue(
        _event_stream(*map(es.payload_part, [b"a\nb", b"\nc"])),
        _opened(),
        Reply.ok(b"in session"),
        _closed(),
    )

    async def main() -> None:
        config = ClientConfig(sign_requests=False, transport="boto3")
        async with _ep(runtime, config=config) as ep:
            assert await ep.transport() == "boto3"
            async with ep.stream(b"x") as s:
                assert [line async for line in s.lines()] == ["a", "b", "c"]
                assert s.bytes_received == 5
            async with ep.session() as session:
                assert (await session.invoke(b"q")).body == b"in session"

    asyncio.run(main())
    ids = [r.headers.get("x-amzn-sagemaker-session-id") for r in runtime.requests]
    assert ids == [None, "NEW_SESSION", SID, SID]


def test_submit_sends_invoke_endpoint_async_on_the_loop(runtime: ScriptedRuntime) -> None:
    """The S3 upload may run in a thread; the runtime call must not: it is sent by the
    asyncio transport (the fast path here), from the loop's thread."""
    import pickle

    runtime.queue(
        Reply(
            202, b'{"InferenceId": "inf-1"}', (("X-Amzn-SageMaker-OutputLocation", "s3://b/o.out"),)
        )
    )
    threads: list[str] = []

    async def main() -> Any:
        async with _ep(runtime) as ep:
            original = ep.requester.submit

            async def spy(request: Any, retry: Any = None) -> Any:
                threads.append(threading.current_thread().name)
                return await original(request, retry)

            ep.requester.submit = spy  # type: ignore[method-assign]
            handle = await ep.submit(input_location="s3://in/x.json", inference_id="inf-1")
            assert threads == [threading.current_thread().name]
            return handle

    handle = asyncio.run(main())
    assert (handle.inference_id, handle.output_location) == ("inf-1", "s3://b/o.out")
    assert runtime.requests[0].path == "/endpoints/scripted/async-invocations"
    assert pickle.loads(pickle.dumps(handle)).inference_id == "inf-1"


def test_a_chunked_stream_from_the_local_endpoint() -> None:
    """The local endpoint frames streams with chunked transfer encoding (as SageMaker does)."""
    from smclient.local import LocalEndpoint

    from .test_streaming import Chunks

    handler = Chunks([b'{"tok', b'en": 1}\n{"token": 2}\n', b'{"token": 3}'])

    async def main(url: str, name: str) -> None:
        async with AsyncEndpoint(
            name, endpoint_url=url, config=ClientConfig(sign_requests=False)
        ) as ep:
            assert await ep.transport() == "fast"
            async with ep.stream(b"{}") as s:
                assert [v async for v in s.json_lines()] == [
                    {"token": 1},
                    {"token": 2},
                    {"token": 3},
                ]
                assert s.chunks_received == 3
            async with ep.stream(b"{}") as s:  # the connection went back to the pool and is reused
                assert await s.text() == '{"token": 1}\n{"token": 2}\n{"token": 3}'

    with LocalEndpoint(handler) as local:
        asyncio.run(main(local.url, local.name))
