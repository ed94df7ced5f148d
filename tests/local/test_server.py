"""Wire tests of the real-time route and its errors, with PLAIN boto3."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from smclient.local import EndpointSpec, HandlerError, HandlerReply, LocalRuntime, ServiceFault


class Echo:
    """Echoes the body upper-cased; the body picks errors."""

    def predict(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None = None,
    ) -> HandlerReply:
        if body == b"model-error":
            raise HandlerError("bad input", 415)
        if body == b"unavailable":
            raise ServiceFault.unavailable("try later")
        if body == b"not-ready":
            raise ServiceFault.not_ready("warming up")
        if body == b"crash":
            raise ZeroDivisionError("secret detail")
        reply = json.dumps({"ct": content_type, "accept": accept, "body": body.decode()})
        return HandlerReply(reply.encode(), "application/json", custom_attributes)


@pytest.fixture(scope="module")
def runtime() -> Any:
    specs = [
        EndpointSpec("echo", handler=Echo(), variant_name="Blue"),
        EndpointSpec("plain", handler=lambda body, ct, accept: body[::-1]),
        EndpointSpec("mme", handler=None, model_root=".", instance_count=1),
    ]
    with LocalRuntime(specs) as rt:
        yield rt


def error_of(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response  # type: ignore[no-any-return]


def test_invoke_honours_headers_and_answers_variant(runtime: Any, client_for: Any) -> None:
    client = client_for(runtime.url)
    response = client.invoke_endpoint(
        EndpointName="echo",
        Body=b"hi",
        ContentType="text/plain",
        Accept="application/json",
        CustomAttributes="trace=1",
        InferenceId="abc",
    )
    assert json.loads(response["Body"].read()) == {
        "ct": "text/plain",
        "accept": "application/json",
        "body": "hi",
    }
    assert response["ContentType"] == "application/json"
    assert response["InvokedProductionVariant"] == "Blue"
    assert response["CustomAttributes"] == "trace=1"
    assert len(response["ResponseMetadata"]["RequestId"]) == 36


def test_plain_callable_defaults(runtime: Any, client_for: Any) -> None:
    response = client_for(runtime.url).invoke_endpoint(EndpointName="plain", Body=b"abc")
    assert response["Body"].read() == b"cba"
    assert response["ContentType"] == "application/octet-stream"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert "CustomAttributes" not in response


def test_unknown_endpoint_is_validation_error(runtime: Any, client_for: Any) -> None:
    client = client_for(runtime.url)
    err = error_of(lambda: client.invoke_endpoint(EndpointName="missing", Body=b"x"))
    assert err["Error"]["Code"] == "ValidationError"
    assert err["Error"]["Message"] == "Endpoint missing of account 123456789012 not found."
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err["ResponseMetadata"]["RequestId"]


def test_model_error_fields_at_top_level(runtime: Any, client_for: Any) -> None:
    client = client_for(runtime.url)
    err = error_of(lambda: client.invoke_endpoint(EndpointName="echo", Body=b"model-error"))
    assert err["Error"]["Code"] == "ModelError"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert err["OriginalStatusCode"] == 415
    assert err["OriginalMessage"] == "bad input"
    assert err["LogStreamArn"].endswith("/aws/sagemaker/Endpoints/echo")
    assert "Received client error (415)" in err["Error"]["Message"]


def test_handler_crash_is_model_error_without_details(runtime: Any, client_for: Any) -> None:
    client = client_for(runtime.url)
    err = error_of(lambda: client.invoke_endpoint(EndpointName="echo", Body=b"crash"))
    assert err["Error"]["Code"] == "ModelError"
    assert err["OriginalStatusCode"] == 500
    assert "secret detail" not in json.dumps(err, default=str)


@pytest.mark.parametrize(
    ("body", "code", "status"),
    [(b"unavailable", "ServiceUnavailable", 503), (b"not-ready", "ModelNotReadyException", 429)],
)
def test_service_faults(runtime: Any, client_for: Any, body: bytes, code: str, status: int) -> None:
    client = client_for(runtime.url)
    err = error_of(lambda: client.invoke_endpoint(EndpointName="echo", Body=body))
    assert err["Error"]["Code"] == code
    assert err["ResponseMetadata"]["HTTPStatusCode"] == status


def test_boto3_modeled_exception_classes(runtime: Any, client_for: Any) -> None:
    client = client_for(runtime.url)
    with pytest.raises(client.exceptions.ModelNotReadyException):
        client.invoke_endpoint(EndpointName="echo", Body=b"not-ready")
    with pytest.raises(client.exceptions.ModelError):
        client.invoke_endpoint(EndpointName="echo", Body=b"model-error")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"TargetModel": "a.tar.gz"}, "not a multi-model endpoint"),
        ({"TargetVariant": "Green"}, "Variant Green does not exist"),
        ({"SessionId": "bad id!"}, "sessionId"),
        ({"SessionId": "x" * 257}, "sessionId"),
        ({"CustomAttributes": "x" * 1025}, "customAttributes"),
        ({"InferenceId": "i" * 65}, "inferenceId"),
    ],
)
def test_bad_headers_are_validation_errors(
    runtime: Any, client_for: Any, kwargs: dict[str, str], fragment: str
) -> None:
    client = client_for(runtime.url)
    err = error_of(lambda: client.invoke_endpoint(EndpointName="echo", Body=b"x", **kwargs))
    assert err["Error"]["Code"] == "ValidationError"
    assert fragment in err["Error"]["Message"]


def test_multi_model_endpoint_requires_target_model(runtime: Any, client_for: Any) -> None:
    client = client_for(runtime.url)
    err = error_of(lambda: client.invoke_endpoint(EndpointName="mme", Body=b"x"))
    assert err["Error"]["Code"] == "ValidationError"
    assert "TargetModel header is required" in err["Error"]["Message"]


def test_body_over_6_mb_is_rejected_and_connection_survives(runtime: Any, client_for: Any) -> None:
    client = client_for(runtime.url)
    err = error_of(lambda: client.invoke_endpoint(EndpointName="echo", Body=b"x" * 6_291_457))
    assert err["Error"]["Code"] == "ValidationError"
    assert "6291456" in err["Error"]["Message"]
    exact = client.invoke_endpoint(EndpointName="plain", Body=b"y" * 6_291_456)
    assert len(exact["Body"].read()) == 6_291_456


def test_endpoint_name_too_long(runtime: Any, client_for: Any) -> None:
    client = client_for(runtime.url)
    err = error_of(lambda: client.invoke_endpoint(EndpointName="e" * 64, Body=b"x"))
    assert err["Error"]["Code"] == "ValidationError"
    assert "endpointName" in err["Error"]["Message"]


def raw(runtime: Any, method: str, path: str, body: bytes = b"", **headers: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", int(runtime.url.rsplit(":", 1)[1]), timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_unknown_route_is_json_404(runtime: Any) -> None:
    status, headers, body = raw(runtime, "POST", "/endpoints/echo/other")
    assert status == 404
    assert headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert json.loads(body)["message"]
    status, _, _ = raw(runtime, "GET", "/endpoints/echo/invocations")
    assert status == 404
    status, headers, _ = raw(runtime, "PATCH", "/endpoints/echo/invocations")
    assert status == 404
    assert headers["x-amzn-ErrorType"] == "UnknownOperationException"


def test_malformed_content_length(runtime: Any) -> None:
    port = int(runtime.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /endpoints/echo/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400")
    assert b"x-amzn-ErrorType: ValidationError" in data


def test_garbage_request_line_gets_json_error(runtime: Any) -> None:
    port = int(runtime.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400"))
    assert b"Traceback" not in data


def test_status_route_counts_per_instance(runtime: Any, client_for: Any) -> None:
    client = client_for(runtime.url)
    before = runtime.status()["endpoints"]["plain"]["instances"][0]["invocations"]
    client.invoke_endpoint(EndpointName="plain", Body=b"1")["Body"].read()
    status, headers, body = raw(runtime, "GET", "/_smclient/status")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert doc["endpoints"]["plain"]["instances"][0]["invocations"] == before + 1
    assert doc["endpoints"]["mme"]["multi_model"] is True
    assert raw(runtime, "GET", "/ping")[0] == 200


def test_sequential_requests_do_not_wait_for_delayed_acks(runtime: Any) -> None:
    # With Nagle's algorithm on, each response's body waits ~40 ms for the client's
    # delayed ACK of the headers: 50 requests would take over 2 s instead of milliseconds.
    conn = http.client.HTTPConnection("127.0.0.1", int(runtime.url.rsplit(":", 1)[1]), timeout=5)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    started = time.perf_counter()
    try:
        for _ in range(50):
            conn.request("POST", "/endpoints/plain/invocations", body=b"ab")
            assert conn.getresponse().read() == b"ba"
    finally:
        conn.close()
    assert time.perf_counter() - started < 1.5


def raw_exchange(runtime: Any, request: bytes) -> bytes:
    port = int(runtime.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and data.endswith(b"}"):
                break
    return data


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ("X-Amzn-SageMaker-Custom-Attributes: caf\xe9\r\n", b"400"),
        ("X-Long: " + "a" * 70_000 + "\r\n", b"431"),
        ("".join(f"X-H{i}: v\r\n" for i in range(120)), b"431"),
    ],
)
def test_malformed_headers_get_json_errors(runtime: Any, headers: str, status: bytes) -> None:
    request = (
        "POST /endpoints/echo/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
        + headers
        + "Connection: close\r\n\r\n"
    ).encode("latin-1")
    data = raw_exchange(runtime, request)
    assert data.startswith(b"HTTP/1.1 " + status)
    assert b"x-amzn-ErrorType" in data
    assert b"Traceback" not in data


@pytest.mark.usefixtures("no_thread_leak")
def test_invocation_timeout_is_the_service_model_error(client_for: Any) -> None:
    gate = threading.Event()

    def slow(body: bytes, content_type: str | None, accept: str | None) -> bytes:
        gate.wait(5)
        return b"late"

    spec = EndpointSpec("slow", handler=slow, invocation_timeout=0.05)
    with LocalRuntime([spec]) as rt:
        with pytest.raises(ClientError) as info:
            client_for(rt.url).invoke_endpoint(EndpointName="slow", Body=b"x")
        gate.set()  # the abandoned call finishes; shutdown joins its thread
    err = info.value.response
    assert err["Error"]["Code"] == "ModelError"
    assert err["OriginalStatusCode"] == 0
    assert "invocation timed out" in err["OriginalMessage"]


def test_invocation_timeout_defaults_to_the_service_limit() -> None:
    assert EndpointSpec("a", handler=lambda b, c, a: b).invocation_timeout == 60.0
    unlimited = EndpointSpec("a", handler=lambda b, c, a: b, invocation_timeout=None)
    assert unlimited.invocation_timeout is None
    with pytest.raises(ValueError, match="invocation_timeout"):
        EndpointSpec("a", handler=lambda b, c, a: b, invocation_timeout=0)


@pytest.mark.usefixtures("no_thread_leak")
def test_no_invocation_timeout_runs_the_model_on_the_connection_thread(client_for: Any) -> None:
    names: list[str] = []

    def where(body: bytes, content_type: str | None, accept: str | None) -> bytes:
        names.append(threading.current_thread().name)
        return b"ok"

    default = EndpointSpec("timed", handler=where)
    unlimited = EndpointSpec("unlimited", handler=where, invocation_timeout=None)
    with LocalRuntime([default, unlimited]) as rt:
        client = client_for(rt.url)
        client.invoke_endpoint(EndpointName="timed", Body=b"x")
        client.invoke_endpoint(EndpointName="unlimited", Body=b"x")
    assert names[0] == "smclient-local-invoke-timed"
    assert names[1].startswith("smclient-local-conn")


@pytest.mark.usefixtures("no_thread_leak")
def test_starts_on_another_loopback_address(client_for: Any) -> None:
    spec = EndpointSpec("plain", handler=lambda body, ct, accept: body[::-1])
    with LocalRuntime([spec], host="127.0.0.2", startup_timeout=2.0) as rt:
        assert rt.url.startswith("http://127.0.0.2:")
        response = client_for(rt.url).invoke_endpoint(EndpointName="plain", Body=b"ab")
        assert response["Body"].read() == b"ba"


def test_readiness_check_address() -> None:
    from smclient.local.server._http import connect_host

    assert connect_host("0.0.0.0") == "127.0.0.1"
    assert connect_host("") == "127.0.0.1"
    assert connect_host("127.0.0.2") == "127.0.0.2"


def test_handler_traceback_is_logged_at_debug_only(
    runtime: Any, client_for: Any, caplog: Any
) -> None:
    import logging

    client = client_for(runtime.url)
    with caplog.at_level(logging.WARNING, logger="smclient.local"):
        error_of(lambda: client.invoke_endpoint(EndpointName="echo", Body=b"crash"))
    assert [r.exc_info for r in caplog.records if r.name == "smclient.local"] == [None]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="smclient.local"):
        error_of(lambda: client.invoke_endpoint(EndpointName="echo", Body=b"crash"))
    traced = [r for r in caplog.records if r.exc_info and r.levelno == logging.DEBUG]
    assert len(traced) == 1
    assert traced[0].exc_info is not None
    assert traced[0].exc_info[0] is ZeroDivisionError


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%X\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (chunked(b"ab", b"cd"), b"HTTP/1.1 200"),
        (chunked(*[b"x" * 1_048_576] * 7), b"HTTP/1.1 400"),  # 7 MiB: over the limit
        (b"zz\r\nab\r\n0\r\n\r\n", b"HTTP/1.1 400"),  # not a hex size
    ],
)
def test_chunked_request_bodies(runtime: Any, body: bytes, expected: bytes) -> None:
    head = (
        b"POST /endpoints/plain/invocations HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    port = int(runtime.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(expected)
    if expected.endswith(b"200"):
        assert data.endswith(b"dcba")


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, b"InputLocation header is required"),
        (
            {
                "X-Amzn-SageMaker-InputLocation": "s3://b/k",
                "X-Amzn-SageMaker-RequestTTLSeconds": "soon",
            },
            b"must be an integer",
        ),
    ],
)
def test_async_headers_checked_before_the_worker(headers: dict[str, str], fragment: bytes) -> None:
    from smclient.local.async_inference._request import async_request

    with pytest.raises(ServiceFault) as info:
        async_request({k.lower(): v for k, v in headers.items()})
    assert fragment.decode() in info.value.message
    assert info.value.status == 400
