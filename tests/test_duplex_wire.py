"""smclient's bidirectional stream against a loopback HTTP/2 server that plays the service
(``smclient.local.bidi.BidiServer``, started on port 0 by each test): signed events that
verify, error answers, mid-stream errors, stalls, cut connections, the 30-minute cap with
an injected clock, cancellation. No test sleeps; the stall tests wait on a 50 ms read
timeout, the smallest the loop can honour reliably."""

from __future__ import annotations

import asyncio
import datetime
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("h2", reason="bidirectional streaming needs the 'duplex' extra (h2)")

import boto3
from botocore.credentials import RefreshableCredentials

from smclient import (
    ClientConfig,
    DuplexClosedError,
    DuplexMessage,
    Endpoint,
    InternalFailureError,
    InternalStreamFailureError,
    InvalidInputError,
    ModelError,
    ModelStreamError,
    ReadTimeoutError,
    ServiceError,
    ServiceUnavailableError,
    StreamInterruptedError,
    StreamTimeoutError,
    ValidationError,
)
from smclient.local.bidi import (
    BidiCall,
    BidiModelError,
    BidiRejection,
    BidiServer,
    BidiStreamFailure,
)

KEYS = {"AKIDLOCAL": "local-secret"}


def _session() -> Any:
    return boto3.Session(
        aws_access_key_id="AKIDLOCAL", aws_secret_access_key="local-secret", region_name="us-west-2"
    )


async def echo(call: BidiCall) -> None:
    """Answers each message with its upper-cased bytes, then a text line."""
    async for message in call:
        await call.send(message.data.upper())
        await call.send(f"{message.data_type}:{len(message.data)}")


@pytest.fixture
def server() -> Iterator[BidiServer]:
    with BidiServer(echo, credentials=KEYS) as running:
        yield running


def _endpoint(server: BidiServer, **config: Any) -> Endpoint:
    return Endpoint(
        "echo",
        endpoint_url=server.url,
        boto3_session=_session(),
        config=ClientConfig(**config),
    )


def test_sync_round_trip_with_every_event_signature_verified(server: BidiServer) -> None:
    endpoint = _endpoint(server)
    with endpoint.duplex(target_variant="AllTraffic") as stream:
        assert stream.invoked_production_variant == "AllTraffic"
        stream.send(b"audio-chunk")
        stream.send("hello")
        stream.close_input()
        messages = list(stream)
    assert messages == [
        DuplexMessage(b"AUDIO-CHUNK", "BINARY"),
        DuplexMessage(b"BINARY:11", "UTF8"),
        DuplexMessage(b"HELLO", "BINARY"),
        DuplexMessage(b"UTF8:5", "UTF8"),
    ]
    assert messages[1].is_text
    assert not messages[0].is_text
    assert server.signature_failures == []
    assert server.access_keys_seen == ["AKIDLOCAL"]
    assert server.events_received == 2


def test_asyncio_round_trip(server: BidiServer) -> None:
    endpoint = _endpoint(server)

    async def main() -> list[str]:
        async with endpoint.duplex_async() as stream:
            for word in ("a", "bb", "ccc"):
                await stream.send(word)
            await stream.close_input()
            return [m.text async for m in stream]

    assert asyncio.run(main()) == ["A", "UTF8:1", "BB", "UTF8:2", "CCC", "UTF8:3"]
    assert server.signature_failures == []


def test_large_sends_go_as_parts_and_come_back_whole(server: BidiServer) -> None:
    endpoint = _endpoint(server)
    payload = bytes(range(256)) * 1000  # 256,000 bytes
    with endpoint.duplex(part_size=64 * 1024) as stream:
        stream.send(payload)
        assert stream.receive() == DuplexMessage(payload.upper(), "BINARY")
        assert stream.receive() == DuplexMessage(b"BINARY:256000", "UTF8")
        stream.close_input()
        assert stream.receive() is None
    assert server.events_received == 4  # 3 full parts + the rest, one message to the model


def test_raw_parts_on_request() -> None:
    async def chunked(call: BidiCall) -> None:
        async for _ in call:
            await call.send("hel", complete=False)
            await call.send("lo")

    with BidiServer(chunked) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        with endpoint.duplex() as stream:
            stream.send(b"go")
            assert stream.receive() == DuplexMessage(b"hello", "UTF8")
        with endpoint.duplex(raw_parts=True) as stream:
            stream.send(b"go")
            assert stream.receive() == DuplexMessage(b"hel", "UTF8", complete=False)
            assert stream.receive() == DuplexMessage(b"lo", "UTF8", complete=True)


def test_unsigned_streams_for_local_endpoints() -> None:
    with BidiServer(echo) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        with endpoint.duplex() as stream:
            stream.send(b"x")
            assert stream.receive() == DuplexMessage(b"X", "BINARY")
        assert server.access_keys_seen == []


def test_refreshing_credentials_are_asked_again_for_each_stream() -> None:
    import datetime
    import itertools

    numbers = itertools.count(1)

    def refresh() -> dict[str, str]:
        # Expiring within botocore's mandatory refresh window: every use refreshes.
        soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
        return {
            "access_key": f"AKID{next(numbers)}",
            "secret_key": "rotating",
            "token": "t",
            "expiry_time": soon.isoformat(),
        }

    creds = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    session = boto3.Session(region_name="us-west-2")
    session._session._credentials = creds  # the provider chain's result, as botocore caches it
    keys = {f"AKID{i}": "rotating" for i in range(1, 20)}
    with BidiServer(echo, credentials=keys) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, boto3_session=session)
        for _ in range(2):
            with endpoint.duplex() as stream:
                stream.send(b"x")
                assert stream.receive() is not None
        assert server.signature_failures == []
        first, second = server.access_keys_seen
        assert int(second[4:]) > int(first[4:])  # the second stream signed with newer keys


def test_a_wrong_secret_is_refused_by_the_verifier() -> None:
    with BidiServer(echo, credentials={"AKIDLOCAL": "another-secret"}) as server:
        with pytest.raises(ServiceError) as info, _endpoint(server).duplex():
            pass
        assert info.value.http_status == 403
        assert info.value.error_code == "InvalidSignatureException"
        assert server.signature_failures == ["the request signature does not match"]


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ValidationError),
        (424, ModelError),
        (500, InternalFailureError),
        (503, ServiceUnavailableError),
    ],
)
def test_error_answers_before_the_stream_are_raised_on_open(
    status: int, cls: type[ServiceError]
) -> None:
    rejection = BidiRejection(
        status, "Failed to establish WebSocket connection", original_status_code=403
    )
    with BidiServer(echo, reject=lambda name, headers: rejection) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        with pytest.raises(cls) as info, endpoint.duplex():
            pytest.fail("the block must not run")
    error = info.value
    assert error.http_status == status
    assert error.message == "Failed to establish WebSocket connection"
    assert error.operation == "InvokeEndpointWithBidirectionalStream"
    assert error.request_id
    if isinstance(error, ModelError):
        assert error.original_status_code == 403
        assert (error.log_stream_arn or "").startswith("arn:aws:logs:")


def test_without_waiting_for_the_answer_the_error_reaches_the_first_read() -> None:
    with BidiServer(echo, reject=lambda name, headers: BidiRejection(424)) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        with endpoint.duplex(wait_for_response=False) as stream, pytest.raises(ModelError):
            stream.receive()


async def failing(call: BidiCall) -> None:
    async for message in call:
        if message.data == b"boom":
            raise BidiModelError("the model gave up", "ModelInvocationTimeExceeded")
        if message.data == b"crash":
            raise BidiStreamFailure("internal")
        await call.send(b"ok")


def test_model_stream_error_reaches_reader_and_sender_after_earlier_messages() -> None:
    with BidiServer(failing) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        with endpoint.duplex() as stream:
            stream.send(b"fine")
            stream.send(b"boom")
            assert stream.receive() == DuplexMessage(b"ok")  # what came before the error
            with pytest.raises(ModelStreamError) as info:
                stream.receive()
            assert info.value.stream_error_code == "ModelInvocationTimeExceeded"
            assert info.value.message == "the model gave up"
            assert info.value.bytes_received == 2
            with pytest.raises(ModelStreamError):
                stream.send(b"more")  # never silently accepted after a failure
            with pytest.raises(ModelStreamError):
                stream.receive()
            assert stream.failure is info.value


def test_a_send_learns_of_the_failure_without_any_read() -> None:
    with BidiServer(failing) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))

        async def main() -> None:
            async with endpoint.duplex_async() as stream:
                await stream.send(b"crash")
                for _ in range(5000):  # the reader task records it (bounded poll)
                    if stream.failure is not None:
                        break
                    await asyncio.sleep(0.001)
                with pytest.raises(InternalStreamFailureError):
                    await stream.send(b"again")

        asyncio.run(main())


async def stalled(call: BidiCall) -> None:
    async for _ in call:
        await asyncio.Event().wait()  # never answers


def test_a_stall_past_the_read_timeout_fails_the_stream_and_resets_it() -> None:
    with BidiServer(stalled) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        with endpoint.duplex(read_timeout=0.05) as stream:
            stream.send(b"hello?")
            with pytest.raises(StreamTimeoutError, match="read timeout"):
                stream.receive()
            with pytest.raises(StreamTimeoutError):
                stream.send(b"still there?")
        _wait_for(lambda: server.resets == 1)


def test_no_answer_headers_within_the_read_timeout_is_a_read_timeout() -> None:
    gate = threading.Event()

    def slow_reject(name: str, headers: Any) -> None:
        gate.wait(5)  # holds the server's loop: no headers are sent

    with BidiServer(echo, reject=slow_reject) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        try:
            with pytest.raises(ReadTimeoutError), endpoint.duplex(read_timeout=0.05):
                pass
        finally:
            gate.set()


def test_a_cut_connection_reaches_reader_and_sender() -> None:
    with BidiServer(echo) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        with endpoint.duplex() as stream:
            stream.send(b"a")
            assert stream.receive() is not None
            assert server.cut_connections() == 1
            with pytest.raises(StreamInterruptedError, match="closed by the service") as info:
                _drain(stream)  # the text answer may come first; the cut follows
            assert info.value.chunks_received >= 1
            with pytest.raises(StreamInterruptedError):
                stream.send(b"b")


def test_the_30_minute_cap_cuts_the_connection_by_the_servers_clock() -> None:
    now = [0.0]
    with BidiServer(echo, clock=lambda: now[0]) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        with endpoint.duplex() as stream:
            stream.send(b"early")
            assert stream.receive() == DuplexMessage(b"EARLY")
            assert stream.receive() is not None
            now[0] = 1800.0  # half an hour later, by the injected clock
            stream.send(b"late")  # reaches the server, which cuts the connection
            with pytest.raises(StreamInterruptedError):
                stream.receive()


def test_cancelling_a_reader_resets_the_http2_stream() -> None:
    with BidiServer(stalled) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))

        async def main() -> None:
            async with endpoint.duplex_async() as stream:
                await stream.send(b"x")
                reader = asyncio.ensure_future(stream.receive())
                await asyncio.sleep(0)
                reader.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await reader
                raise asyncio.CancelledError  # the caller's task is cancelled

        with pytest.raises(asyncio.CancelledError):
            asyncio.run(main())
        _wait_for(lambda: server.resets == 1)


def test_send_after_close_input_and_after_the_block_raise_closed() -> None:
    with BidiServer(echo) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        with endpoint.duplex() as stream:
            stream.close_input()
            stream.close_input()  # idempotent
            with pytest.raises(DuplexClosedError, match="input is closed"):
                stream.send(b"late")
        with pytest.raises(DuplexClosedError):
            stream.send(b"later")
        unopened = endpoint.duplex()
        with pytest.raises(DuplexClosedError, match="not open"):
            unopened.send(b"x")


def test_send_refuses_other_types_before_sending() -> None:
    with BidiServer(echo) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        with endpoint.duplex() as stream:
            with pytest.raises(InvalidInputError, match="bytes or str"):
                stream.send(123)  # type: ignore[arg-type]
            stream.send(bytearray(b"ok"))
            assert stream.receive() == DuplexMessage(b"OK")


def test_one_thread_sends_while_another_reads() -> None:
    with BidiServer(echo) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        with endpoint.duplex() as stream:
            received: list[DuplexMessage] = []
            reader = threading.Thread(target=lambda: received.extend(stream))
            reader.start()
            for i in range(50):
                stream.send(str(i))
            stream.close_input()
            reader.join(10)
    assert [m.text for m in received[::2]] == [str(i) for i in range(50)]


def test_the_private_loop_thread_runs_only_while_a_blocking_stream_is_open() -> None:
    def ours() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name == "smclient-duplex-loop"]

    with BidiServer(echo) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        unopened = endpoint.duplex()
        assert ours() == []  # nothing starts before a stream opens
        with endpoint.duplex() as first, endpoint.duplex() as second:
            first.send(b"a")
            second.send(b"b")
            assert ours() == ["smclient-duplex-loop"]  # one loop for every stream
            assert first.receive() == DuplexMessage(b"A")
        assert ours() == []  # the last close stops it
        del unopened


def test_connect_failure_is_a_connect_error() -> None:
    from smclient import ConnectError

    with BidiServer(echo) as server:
        url = server.url
    endpoint = Endpoint("m", endpoint_url=url, config=ClientConfig(sign_requests=False))
    with pytest.raises(ConnectError, match="could not connect"), endpoint.duplex():
        pass


def test_tls_with_the_generated_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cryptography")
    with BidiServer(echo, tls=True, credentials=KEYS) as server:
        assert server.url.startswith("https://")
        assert server.cafile is not None
        monkeypatch.setenv("AWS_CA_BUNDLE", server.cafile)  # botocore's private-CA setting
        with _endpoint(server).duplex() as stream:
            stream.send(b"secure")
            assert stream.receive() == DuplexMessage(b"SECURE")
        assert server.signature_failures == []


def _drain(stream: Any) -> None:
    while stream.receive() is not None:
        pass


def _wait_for(condition: Any) -> None:
    """Wait (bounded) for the server thread to record something; no fixed sleep."""
    done = threading.Event()
    for _ in range(200):
        if condition():
            return
        done.wait(0.01)
    assert condition()


def test_a_corrupt_event_from_the_service_breaks_the_stream_cleanly() -> None:
    async def corrupt(call: BidiCall) -> None:
        async for _ in call:
            await call.send(b"fine")
            await call._emit(b"\x00\x00\x00\x20" + b"\xff" * 28)  # bad prelude CRC

    with BidiServer(corrupt) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        with endpoint.duplex() as stream:
            stream.send(b"x")
            assert stream.receive() == DuplexMessage(b"fine")
            with pytest.raises(StreamInterruptedError, match="corrupt event-stream message"):
                stream.receive()
            with pytest.raises(StreamInterruptedError):
                stream.send(b"y")


def test_a_message_larger_than_max_message_bytes_fails_the_stream() -> None:
    async def huge(call: BidiCall) -> None:
        async for _ in call:
            for _ in range(5):
                await call.send(b"0123456789", complete=False)
            await call.send(b"end")

    with BidiServer(huge) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        with endpoint.duplex(max_message_bytes=32) as stream:
            stream.send(b"x")
            with pytest.raises(StreamInterruptedError, match="max_message_bytes=32"):
                stream.receive()


def test_an_8_mib_message_both_ways(server: BidiServer) -> None:
    payload = bytes(range(256)) * (32 * 1024)  # 8 MiB
    with _endpoint(server).duplex() as stream:
        stream.send(payload)  # 8 parts of 1 MiB
        assert stream.receive() == DuplexMessage(payload.upper(), "BINARY")  # one 8 MiB event
    assert server.events_received == 8


def test_text_that_is_not_valid_unicode_is_refused_before_sending(server: BidiServer) -> None:
    with _endpoint(server).duplex() as stream:
        with pytest.raises(InvalidInputError, match="surrogates"):
            stream.send("bad \ud800 text")
        stream.send("fine")  # the stream is untouched
        assert stream.receive() == DuplexMessage(b"FINE", "BINARY")
    assert server.events_received == 1


def test_a_credential_refresh_that_fails_is_a_configuration_error() -> None:
    from smclient import ConfigurationError

    calls = [0]

    def refresh() -> dict[str, str]:
        calls[0] += 1
        if calls[0] > 2:  # the initial load and the check before connecting succeed
            raise RuntimeError("the SSO token expired")
        soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
        return {
            "access_key": "AKIDLOCAL",
            "secret_key": "local-secret",
            "token": "t",
            "expiry_time": soon.isoformat(),
        }

    creds = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    session = boto3.Session(region_name="us-west-2")
    session._session._credentials = creds
    with BidiServer(echo, credentials=KEYS) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, boto3_session=session)
        with pytest.raises(ConfigurationError, match="SSO token expired"), endpoint.duplex():
            pass


def test_the_30_minute_cap_also_cuts_a_silent_client() -> None:
    now = [0.0]
    with BidiServer(echo, clock=lambda: now[0]) as server:
        endpoint = Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        with endpoint.duplex() as stream:
            stream.send(b"hi")
            assert stream.receive() == DuplexMessage(b"HI")
            assert server.enforce_max_age() == 0  # young
            now[0] = 1800.0  # the client only listens from here on
            assert server.enforce_max_age() == 1
            with pytest.raises(StreamInterruptedError):
                _drain(stream)


def test_async_endpoint_duplex() -> None:
    from smclient import AsyncEndpoint

    with BidiServer(echo, credentials=KEYS) as server:

        async def main() -> list[DuplexMessage]:
            async with AsyncEndpoint(
                "echo", endpoint_url=server.url, boto3_session=_session()
            ) as endpoint:
                async with endpoint.duplex() as stream:
                    await stream.send("one")
                    first = await stream.receive()
                stream = await endpoint.duplex()  # opened by await, closed by the caller
                try:
                    await stream.send(b"two")
                    second = await stream.receive()
                finally:
                    await stream.aclose()
                assert first is not None
                assert second is not None
                return [first, second]

        assert asyncio.run(main()) == [
            DuplexMessage(b"ONE", "BINARY"),
            DuplexMessage(b"TWO", "BINARY"),
        ]
        assert server.signature_failures == []
