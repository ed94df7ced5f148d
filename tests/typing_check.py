"""Type-checked in CI (``mypy --strict tests/typing_check.py``), never run: pins the types
users see from the whole public surface (modelled on stamina's ``tests/typing/api.py``).

Each function exercises one area the way a user writes it; ``assert_type`` fails the type
check when a public type drifts (a return type widened to ``Any``, a field losing its
``Literal``, an overload gone). ``# type: ignore`` lines pin what must NOT type-check.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from mypy_boto3_s3 import S3Client
from mypy_boto3_sagemaker import SageMakerClient
from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient
from mypy_boto3_sns import SNSClient
from mypy_boto3_sqs import SQSClient
from typing_extensions import assert_type

import smclient
from smclient import (
    CSV,
    JSON,
    NPY,
    RAW,
    AsyncDuplexStream,
    AsyncInferenceError,
    AsyncInvocation,
    AsyncTimeoutError,
    BatchItem,
    BatchResult,
    BatchRun,
    BatchSummary,
    ClientConfig,
    Codec,
    Completion,
    ConfigurationError,
    ConnectError,
    ConnectionClosedError,
    CSVCodec,
    DuplexClosedError,
    DuplexMessage,
    DuplexStream,
    Endpoint,
    EndpointCreationError,
    InternalDependencyError,
    InternalFailureError,
    InternalStreamFailureError,
    InvalidInputError,
    InvocationResult,
    JSONCodec,
    ModelError,
    ModelHandle,
    ModelNotReadyError,
    ModelStreamError,
    NPYCodec,
    Poller,
    RawCodec,
    ReadTimeoutError,
    ReconnectPolicy,
    ResponseStream,
    RetriesExhaustedError,
    RetryEvent,
    RetryPolicy,
    RetryReason,
    S3AccessDeniedError,
    S3Object,
    ServiceError,
    ServiceUnavailableError,
    Session,
    SessionClosedError,
    SessionError,
    SessionExpiredError,
    SessionHeaderError,
    SessionInfo,
    SessionProtocol,
    SessionState,
    SMClientError,
    SSEEvent,
    StreamInterruptedError,
    StreamReconnectedError,
    StreamTimeoutError,
    ThrottlingError,
    TransportError,
    ValidationError,
    WaitResult,
)
from smclient.local import ContainerError, LocalEndpoint
from smclient.testing import Reply, ScriptedRuntime, no_retry_waits


def endpoint_and_clients() -> Endpoint:
    ep = Endpoint(
        "my-endpoint",
        region="eu-west-1",
        endpoint_url="http://127.0.0.1:8080",
        config=ClientConfig(read_timeout=70.0, sign_requests=False),
        retry=RetryPolicy(timeout=120.0),
        codec=JSON,
    )
    assert_type(ep.name, str)
    assert_type(ep.region, str | None)
    assert_type(ep.endpoint_url, str | None)
    assert_type(ep.aws_endpoint_url, str | None)
    assert_type(ep.retry, RetryPolicy)
    assert_type(ep.config, ClientConfig)
    # client() is typed per service (boto3-stubs), Any for other services.
    assert_type(ep.client(), SageMakerRuntimeClient)
    assert_type(ep.client("sagemaker-runtime"), SageMakerRuntimeClient)
    assert_type(ep.client("s3"), S3Client)
    assert_type(ep.client("sqs"), SQSClient)
    assert_type(ep.client("sns"), SNSClient)
    assert_type(ep.client("sagemaker"), SageMakerClient)
    assert_type(ep.client("kinesis"), Any)
    service: str = "s3"
    assert_type(ep.client(service), Any)
    with ep as same:
        assert_type(same, Endpoint)
    Endpoint("x", retry={"timeout": 5})  # type: ignore[arg-type]
    Endpoint("x", codec="json")  # type: ignore[arg-type]
    return ep


def invoking(ep: Endpoint) -> None:
    result = ep.invoke({"a": 1}, target_model="m", retry=RetryPolicy.never())
    assert_type(result, InvocationResult)
    assert_type(result.body, bytes)
    assert_type(result.json(), Any)
    assert_type(result.text(), str)
    assert_type(result.decode(CSV), Any)
    assert_type(result.content_type, str | None)
    assert_type(result.request_id, str | None)
    assert_type(result.attempts, int)
    assert_type(result.elapsed, float)
    assert_type(result.new_session_id, str | None)
    assert_type(
        ep.invoke(io.BytesIO(b"x"), content_type="application/octet-stream"), InvocationResult
    )
    handle = ep.model("m.tar.gz")
    assert_type(handle, ModelHandle)
    assert_type(handle.target_model, str)
    assert_type(handle.endpoint, Endpoint)
    assert_type(handle.invoke(b"x", codec=RAW), InvocationResult)


def streaming(ep: Endpoint) -> None:
    with ep.stream(b"x", accept="application/jsonlines") as stream:
        assert_type(stream, ResponseStream)
        assert_type(iter(stream), Iterator[bytes])
        assert_type(stream.lines(), Iterator[str])
        assert_type(stream.json_lines(), Iterator[Any])
        assert_type(stream.text(), str)
        assert_type(stream.attempts, int)
        assert_type(stream.request_id, str | None)
        assert_type(stream.time_to_first_byte, float | None)
        assert_type(stream.bytes_received, int)
        for event in stream.sse():
            assert_type(event, SSEEvent)
            assert_type(event.data, str)
            assert_type(event.json(), Any)


def sessions(ep: Endpoint) -> None:
    with ep.session(open_body={"document": "..."}, protocol=SessionProtocol.DJL) as s:
        assert_type(s, Session)
        assert_type(s.id, str)
        assert_type(s.info, SessionInfo)
        assert_type(s.state, SessionState)
        assert_type(s.expires_at, datetime | None)
        assert_type(s.expires_in, float | None)
        assert_type(s.open_result, InvocationResult | None)
        assert_type(s.invoke({"q": 1}), InvocationResult)
        assert_type(s.stream(b"x"), ResponseStream)
        info = s.detach()
    assert_type(info, SessionInfo)
    assert_type(SessionInfo.from_json(info.to_json()), SessionInfo)
    assert_type(SessionInfo.parse("abc; Expires=2030-01-01T00:00:00Z"), SessionInfo)
    resumed = Session.attach(ep, info)
    assert_type(resumed, Session)
    assert_type(resumed.close(), InvocationResult | None)


def retry_policies() -> None:
    def on_retry(event: RetryEvent) -> None:
        assert_type(event.attempt, int)
        assert_type(event.reason, RetryReason)
        assert_type(event.error_code, str | None)
        assert_type(event.elapsed, float)
        assert_type(event.delay, float)
        assert_type(event.error, SMClientError)

    policy = RetryPolicy(on_retry=on_retry, sleep=lambda s: None, clock=lambda: 0.0)
    assert_type(policy.including(RetryReason.INTERNAL), RetryPolicy)
    assert_type(policy.excluding(RetryReason.TRANSIENT), RetryPolicy)
    assert_type(RetryPolicy.never(), RetryPolicy)
    assert_type(policy.backoff(3), float)
    assert_type(policy.timeout, float)
    assert_type(policy.retry_on, frozenset[RetryReason])
    RetryPolicy(timeout="10")  # type: ignore[arg-type]


def codecs() -> None:
    for codec in (JSON, CSV, RAW, NPY):
        assert_type(codec.content_type, str)
    assert_type(JSON, JSONCodec)
    assert_type(CSV, CSVCodec)
    assert_type(RAW, RawCodec)
    assert_type(NPY, NPYCodec)
    assert_type(JSONCodec(allow_nan=True).encode([1.0]), bytes)
    assert_type(JSON.decode(b"{}"), Any)
    mine: Codec = JSONCodec(content_type="application/x-json")
    assert_type(mine.encode({}), bytes)


def errors(ep: Endpoint) -> None:
    try:
        ep.invoke(b"x")
    except ModelNotReadyError as err:  # also raised when a cold start runs out of time
        assert_type(err.attempts, int)
        if isinstance(err, RetriesExhaustedError):
            assert_type(err.elapsed, float)
            assert_type(err.history, tuple[str, ...])
    except ModelError as err:
        assert_type(err.original_status_code, int | None)
        assert_type(err.original_message, str | None)
        assert_type(err.log_stream_arn, str | None)
    except ModelStreamError as err:
        assert_type(err.stream_error_code, str | None)
        assert_type(err.bytes_received, int)
    except (
        ValidationError,
        ThrottlingError,
        ServiceUnavailableError,
        InternalFailureError,
        InternalDependencyError,
        InternalStreamFailureError,
    ) as err:
        assert_type(err.error_code, str | None)
        assert_type(err.http_status, int | None)
    except ServiceError as err:
        assert_type(err.request_id, str | None)
        assert_type(err.endpoint, str | None)
        assert_type(err.operation, str | None)
        assert_type(err.target_model, str | None)
    except StreamTimeoutError as err:
        assert_type(err.bytes_received, int)
        assert_type(err.chunks_received, int)
    except StreamInterruptedError as err:
        assert_type(err.request_id, str | None)
    except (ConnectError, ReadTimeoutError, ConnectionClosedError) as err:
        assert_type(err.attempts, int)
    except TransportError as err:
        assert_type(err.endpoint, str | None)
    except RetriesExhaustedError as err:
        assert_type(err.last_error, SMClientError)
        assert_type(err.attempts, int)
    except InvalidInputError as err:
        assert_type(err.field, str)
        assert_type(err.limit, str | None)
        as_value_error: ValueError = err  # also a ValueError
        assert_type(as_value_error, ValueError)
    except ConfigurationError as err:
        assert_type(err.endpoint, str | None)
    except SessionExpiredError as err:
        assert_type(err.expires_at, datetime | None)
    except SessionClosedError as err:
        assert_type(err.state, SessionState)
        assert_type(err.server_error, ServiceError | None)
    except SessionHeaderError as err:
        assert_type(err.header, str | None)
    except SessionError as err:
        assert_type(err.session_id, str | None)
    except AsyncInferenceError as err:
        assert_type(err.failure_reason, str | None)
        assert_type(err.failure_content, bytes | None)
    except AsyncTimeoutError as err:
        assert_type(err.pending, tuple[AsyncInvocation, ...])
        assert_type(err.done, int)
    except S3AccessDeniedError as err:
        assert_type(err.permission, str)
    except EndpointCreationError as err:
        assert_type(
            err.stage,
            Literal["CreateModel", "CreateEndpointConfig", "CreateEndpoint", "WaitInService"],
        )
        assert_type(err.left_behind, tuple[str, ...])
    except SMClientError as err:
        assert_type(err.message, str)


def async_inference(ep: Endpoint) -> None:
    handle = ep.submit({"x": 1}, input_prefix="s3://bucket/in")
    assert_type(handle, AsyncInvocation)
    assert_type(handle.inference_id, str)
    assert_type(handle.result(), Any)
    assert_type(handle.result(download=True), Any)
    assert_type(handle.result(download=False), S3Object)
    assert_type(handle.result(60.0, download=False), S3Object)
    flag: bool = False
    assert_type(handle.result(download=flag), Any)
    assert_type(handle.exception(), AsyncInferenceError | None)
    assert_type(AsyncInvocation.from_json(handle.to_json()), AsyncInvocation)
    done = handle.wait(30.0)
    assert_type(done, Completion)
    assert_type(done.source, Literal["s3", "notification"])
    assert_type(done.succeeded, bool)
    assert_type(done.result(download=False), S3Object)
    assert_type(done.result(codec=JSON), Any)
    assert_type(done.result(download=False).url, str)
    finished_wait = smclient.wait([handle], timeout=10.0)
    assert_type(finished_wait, WaitResult)
    done_handles, pending_handles = finished_wait
    assert_type(done_handles, list[AsyncInvocation])
    assert_type(pending_handles, list[AsyncInvocation])
    for finished in smclient.as_completed([handle]):
        assert_type(finished, Completion)
    poller = Poller(ep, queue_url="https://sqs.example/q")
    assert_type(poller.wait([handle]), WaitResult)
    assert_type(poller.poll(), list[Completion])


def batches(ep: Endpoint) -> None:
    run = ep.invoke_many([{"x": 1}, BatchItem({"x": 2}, target_model="m")], concurrency=8)
    assert_type(run, BatchRun)
    with run:
        for item in run:
            assert_type(item, BatchResult)
            assert_type(item.index, int)
            assert_type(item.ok, bool)
            assert_type(item.result, InvocationResult | None)
            if item.ok:
                assert_type(item.unwrap(), InvocationResult)
    summary = run.summary
    assert_type(summary, BatchSummary)
    assert_type(summary.succeeded, int)
    assert_type(summary.elapsed, float)


def duplex(ep: Endpoint) -> None:
    with ep.duplex(target_variant="AllTraffic", reconnect=ReconnectPolicy()) as stream:
        assert_type(stream, DuplexStream)
        stream.send(b"audio")
        stream.send("text")
        stream.close_input()
        for message in stream:
            assert_type(message, DuplexMessage)
            assert_type(message.data, bytes)
            assert_type(message.complete, bool)
        assert_type(stream.receive(), DuplexMessage | None)
        assert_type(stream.request_id, str | None)
        assert_type(stream.failure, SMClientError | None)
    assert_type(ep.duplex_async(), AsyncDuplexStream)
    try:
        stream.send(b"late")
    except StreamReconnectedError:
        pass
    except DuplexClosedError as err:
        assert_type(err.message, str)


def deploy() -> None:
    created = smclient.create_multi_model_endpoint(
        "mme",
        image_uri="123.dkr.ecr.eu-west-1.amazonaws.com/mms:latest",
        role_arn="arn:aws:iam::123456789012:role/sm",
        instance_type="ml.m5.large",
        model_data_prefix="s3://bucket/models/",
    )
    assert_type(created, Endpoint)
    assert_type(smclient.delete_endpoint(created), list[str])


def local_endpoints() -> None:
    def predict(body: bytes, content_type: str | None, accept: str | None) -> bytes:
        return body.upper()

    with LocalEndpoint(predict) as local:
        assert_type(local, LocalEndpoint)
        assert_type(local.url, str)
        assert_type(local.name, str)
        assert_type(local.endpoint(), Endpoint)
        assert_type(local.endpoint().invoke(b"x"), InvocationResult)
    try:
        pass
    except ContainerError as err:
        assert_type(err.status, int)


def testing_helpers() -> None:
    with ScriptedRuntime() as runtime:
        runtime.queue(Reply.model_not_ready(), Reply.ok(b"{}"))
        assert_type(runtime.url, str)
        assert_type(runtime.endpoint("e"), Endpoint)
        with no_retry_waits():
            pass


def check_duplex(ep: Endpoint) -> None:
    from smclient import (
        AsyncDuplexStream,
        DuplexMessage,
        DuplexStream,
        ReconnectEvent,
        ReconnectPolicy,
    )

    def restore(event: ReconnectEvent) -> None:
        assert_type(event.attempt, int)

    with ep.duplex(reconnect=ReconnectPolicy(), on_reconnect=restore) as stream:
        assert_type(stream, DuplexStream)
        stream.send(b"audio")
        stream.send("text")
        assert_type(stream.receive(), DuplexMessage | None)
        for message in stream:
            assert_type(message, DuplexMessage)
            assert_type(message.data, bytes)
            assert_type(message.is_text, bool)
        stream.close_input()

    async def talk() -> None:
        async with ep.duplex_async(part_size=4096) as astream:
            assert_type(astream, AsyncDuplexStream)
            await astream.send(b"x")
            async for item in astream:
                assert_type(item, DuplexMessage)


async def check_async_duplex(ep: smclient.AsyncEndpoint) -> None:
    from smclient import AsyncDuplexStream, DuplexMessage

    async with ep.duplex(model_invocation_path="v1/chat") as stream:
        assert_type(stream, AsyncDuplexStream)
        await stream.send("hi")
        assert_type(await stream.receive(), DuplexMessage | None)
    opened = await ep.duplex()
    assert_type(opened, AsyncDuplexStream)
    await opened.aclose()
