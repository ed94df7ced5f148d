"""The fast transport against botocore: the same wire (a loopback server records both),
the same results and errors, and the fallback to the boto3 client whenever botocore hooks
must see the call (moto, Stubber, user handlers) - all on loopback servers or in-process
mocks, never the network."""

from __future__ import annotations

import contextlib
import datetime
import itertools
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials
from botocore.stub import Stubber
from moto import mock_aws

from smclient import (
    ClientConfig,
    ConfigurationError,
    ConnectError,
    ConnectionClosedError,
    Endpoint,
    InvalidInputError,
    ModelError,
    ReadTimeoutError,
    RetryPolicy,
    SMClientError,
    ValidationError,
)
from smclient.testing import MotoResult, Reply, ScriptedRuntime, queue_moto_results

pytestmark = pytest.mark.usefixtures("aws_env")


@attrs.frozen
class Raw:
    """A request as it arrived: header names in their case and order."""

    requestline: str
    headers: list[tuple[str, str]]
    body: bytes

    def get(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class Recorder:
    """A loopback server recording raw requests; answers 200 (or a queued raw answer)."""

    def __init__(self) -> None:
        self.requests: list[Raw] = []
        self.connections = 0
        self.answers: list[tuple[int, list[tuple[str, str]], bytes]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                recorder.connections += 1

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.requests.append(Raw(self.requestline, list(self.headers.items()), body))
                status, headers, answer = (
                    recorder.answers.pop(0)
                    if recorder.answers
                    else (200, [("Content-Type", "text/plain")], b"ok")
                )
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


def _session(token: str | None = "tok") -> Any:
    return boto3.Session(
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
        aws_session_token=token,
        region_name="us-east-1",
    )


def _pair(url: str, **kwargs: Any) -> tuple[Endpoint, Endpoint]:
    session = kwargs.pop("boto3_session", None) or _session()
    return (
        Endpoint(
            "ep-1",
            endpoint_url=url,
            boto3_session=session,
            config=ClientConfig(transport="fast"),
            **kwargs,
        ),
        Endpoint(
            "ep-1",
            endpoint_url=url,
            boto3_session=session,
            config=ClientConfig(transport="boto3"),
            **kwargs,
        ),
    )


def _verify_signature(raw: Raw, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recompute the request's signature with botocore's SigV4Auth at its own X-Amz-Date."""
    auth = raw.get("Authorization")
    assert auth is not None
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    stamp = raw.get("X-Amz-Date")
    assert stamp is not None
    when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: when)
    path = raw.requestline.split(" ")[1]
    request = AWSRequest(
        "POST",
        url + path,
        data=raw.body,
        headers={k: v for k, v in raw.headers if k.lower() in signed and k.lower() != "host"},
    )
    creds = Credentials("AKIDTEST", "secret", raw.get("X-Amz-Security-Token"))
    botocore.auth.SigV4Auth(creds, "sagemaker", "us-east-1").add_auth(request)
    assert request.headers["Authorization"] == auth


def _features(user_agent: str) -> tuple[str, frozenset[str]]:
    """The User-Agent without its feature list (a set: botocore renders it unordered)."""
    parts = user_agent.split(" ")
    features = frozenset(p for p in parts if p.startswith("m/"))
    return " ".join(p for p in parts if not p.startswith("m/")), features


def _same_wire(fast: Raw, boto: Raw, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert fast.requestline == boto.requestline
    assert fast.body == boto.body
    varying = {"x-amz-date", "authorization", "amz-sdk-invocation-id", "user-agent"}
    assert [k for k, _v in fast.headers] == [k for k, _v in boto.headers]  # names, case, order
    assert [(k, v) for k, v in fast.headers if k.lower() not in varying] == [
        (k, v) for k, v in boto.headers if k.lower() not in varying
    ]
    ua_fast, ua_boto = fast.get("User-Agent"), boto.get("User-Agent")
    assert ua_fast is not None
    assert ua_boto is not None
    assert _features(ua_fast) == _features(ua_boto)
    assert ua_fast.endswith(ua_boto.rsplit(" ", 1)[-1])
    assert "smclient/" in ua_fast
    auth_fast, auth_boto = fast.get("Authorization"), boto.get("Authorization")
    assert auth_fast is not None
    assert auth_boto is not None
    assert (
        auth_fast.split("Signature=")[0].replace(fast.get("X-Amz-Date")[:8], "D")
        == auth_boto.split(  # type: ignore[index]
            "Signature="
        )[0].replace(boto.get("X-Amz-Date")[:8], "D")
    )  # type: ignore[index]
    invocation = fast.get("amz-sdk-invocation-id")
    assert invocation is not None
    assert len(invocation) == 36
    _verify_signature(fast, url, monkeypatch)
    _verify_signature(boto, url, monkeypatch)


INVOKE_ARGS: list[dict[str, Any]] = [
    {},
    {"content_type": "application/json", "accept": "application/json"},
    {
        "content_type": "text/csv",
        "accept": "*/*",
        "target_model": "models/a b+c~d.tar.gz",
        "target_variant": "blue",
        "target_container_hostname": "c-1",
        "inference_component": "ic-1",
        "inference_id": "id 1",
        "custom_attributes": "trace=1, x=  2",
        "enable_explanations": "`true`",
    },
]


@pytest.mark.parametrize("kwargs", INVOKE_ARGS)
@pytest.mark.parametrize("body", [b"", b"\x00\xff binary", {"json": [1, 2]}, "t\u00e9xt"])
def test_invoke_sends_what_botocore_sends(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], body: Any
) -> None:
    fast, boto = _pair(recorder.url)
    assert (fast.transport, boto.transport) == ("fast", "boto3")
    fast.invoke(body, **kwargs)
    boto.invoke(body, **kwargs)
    _same_wire(recorder.requests[0], recorder.requests[1], recorder.url, monkeypatch)


def test_session_ids_and_unsigned_requests_match(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, boto = _pair(recorder.url)
    for ep in (fast, boto):
        ep.requester.invoke(ep.requester.build(b"x").with_session("NEW_SESSION"))
    _same_wire(recorder.requests[0], recorder.requests[1], recorder.url, monkeypatch)
    unsigned = [
        Endpoint(
            "ep-1", endpoint_url=recorder.url, config=ClientConfig(sign_requests=False, transport=t)
        )
        for t in ("fast", "boto3")
    ]
    for ep in unsigned:
        ep.invoke(b"x")
    a, b = recorder.requests[2], recorder.requests[3]
    assert a.get("Authorization") is None
    assert b.get("Authorization") is None
    assert [k for k, _ in a.headers] == [k for k, _ in b.headers]


def test_long_term_credentials_send_no_token(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, boto = _pair(recorder.url, boto3_session=_session(token=None))
    fast.invoke(b"x")
    boto.invoke(b"x")
    assert recorder.requests[0].get("X-Amz-Security-Token") is None
    _same_wire(recorder.requests[0], recorder.requests[1], recorder.url, monkeypatch)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {
            "content_type": "application/json",
            "accept": "text/event-stream",
            "custom_attributes": "a=1",
            "target_variant": "v",
            "target_container_hostname": "h",
            "inference_component": "ic",
            "inference_id": "i",
            "session_id": "abc-1",
        },
    ],
)
def test_stream_sends_what_botocore_sends(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any]
) -> None:
    fast, boto = _pair(recorder.url)
    for ep in (fast, boto):
        recorder.answers.append(
            (
                200,
                [
                    ("Content-Type", "application/vnd.amazon.eventstream"),
                    ("X-Amzn-SageMaker-Content-Type", "text/plain"),
                ],
                b"",
            )
        )
        with ep.stream(b"go", **kwargs) as s:
            assert s.content_type == "text/plain"
            assert s.text() == ""
    _same_wire(recorder.requests[0], recorder.requests[1], recorder.url, monkeypatch)


def test_submit_sends_what_botocore_sends(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, boto = _pair(recorder.url)
    handles = []
    for ep in (fast, boto):
        recorder.answers.append(
            (
                202,
                [
                    ("X-Amzn-SageMaker-OutputLocation", "s3://b/out"),
                    ("X-Amzn-SageMaker-FailureLocation", "s3://b/fail"),
                ],
                b'{"InferenceId": "inf-1"}',
            )
        )
        handles.append(
            ep.submit(
                input_location="s3://bucket/in.json",
                content_type="application/json",
                accept="application/json",
                custom_attributes="c",
                inference_id="inf-1",
                request_ttl=600,
                invocation_timeout=120,
                s3_output_path_extension="ext",
                filename="f.json",
            )
        )
    _same_wire(recorder.requests[0], recorder.requests[1], recorder.url, monkeypatch)
    a, b = handles
    assert (
        (a.inference_id, a.output_location, a.failure_location)
        == (b.inference_id, b.output_location, b.failure_location)
        == ("inf-1", "s3://b/out", "s3://b/fail")
    )


@pytest.mark.parametrize(
    "reply",
    [
        Reply.error("ValidationError", 400, "Endpoint x of account y not found."),
        Reply.model_error(507, "out of memory"),
        Reply.error("InternalFailure", 500, "boom"),
        Reply.error("SomethingNew", 418, "teapot"),
    ],
)
def test_errors_parse_to_the_same_typed_errors(runtime: ScriptedRuntime, reply: Reply) -> None:
    caught = []
    for transport in ("fast", "boto3"):
        runtime.queue(reply)
        ep = runtime.endpoint(
            config=ClientConfig(sign_requests=False, transport=transport), retry=RetryPolicy.never()
        )
        with pytest.raises(SMClientError) as info:
            ep.invoke(b"x")
        caught.append(info.value)
    fast, boto = caught
    assert type(fast) is type(boto)
    keep = (
        "error_code",
        "http_status",
        "message",
        "original_status_code",
        "original_message",
        "log_stream_arn",
        "attempts",
    )
    assert {k: getattr(fast, k, None) for k in keep} == {k: getattr(boto, k, None) for k in keep}
    assert fast.request_id
    assert fast.request_id != boto.request_id
    if isinstance(fast, ModelError):
        assert fast.original_status_code == 507


def test_results_are_the_same(runtime: ScriptedRuntime) -> None:
    results = []
    for transport in ("fast", "boto3"):
        runtime.queue(
            Reply.ok(
                b"{}",
                content_type="application/json",
                variant="blue",
                headers={
                    "X-Amzn-SageMaker-Custom-Attributes": "c=1",
                    "X-Amzn-SageMaker-New-Session-Id": "s-1; Expires=2030-01-01T00:00:00Z",
                    "X-Amzn-SageMaker-Closed-Session-Id": "s-0",
                },
            )
        )
        results.append(
            runtime.endpoint(config=ClientConfig(sign_requests=False, transport=transport)).invoke(
                b"x"
            )
        )
    fast, boto = results
    fields = (
        "body",
        "content_type",
        "invoked_production_variant",
        "custom_attributes",
        "new_session_id",
        "closed_session_id",
        "attempts",
    )
    assert {f: getattr(fast, f) for f in fields} == {f: getattr(boto, f) for f in fields}
    assert fast.new_session_id == "s-1; Expires=2030-01-01T00:00:00Z"


# -- credentials -------------------------------------------------------------------------


def test_refreshing_credentials_are_resolved_on_every_call(recorder: Recorder) -> None:
    counter = itertools.count(1)

    def refresh() -> dict[str, str]:
        # Expiring within botocore's mandatory refresh window: every use refreshes.
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
        return {
            "access_key": f"AKID{next(counter)}",
            "secret_key": "s",
            "token": "t",
            "expiry_time": expiry.isoformat(),
        }

    session = _session()
    session._session._credentials = RefreshableCredentials.create_from_metadata(
        refresh(), refresh, "test"
    )
    ep = Endpoint("ep-1", endpoint_url=recorder.url, boto3_session=session)
    assert ep.transport == "fast"
    ep.invoke(b"x")
    ep.invoke(b"x")
    first, second = (
        (r.get("Authorization") or "").split("Credential=")[1].split("/")[0]
        for r in recorder.requests
    )
    assert first.startswith("AKID")
    assert second.startswith("AKID")
    assert first != second  # never a frozen copy of the first keys


def test_no_credentials_is_a_configuration_error(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    ep = Endpoint("ep-1", endpoint_url=recorder.url, config=ClientConfig(transport="fast"))
    with pytest.raises(ConfigurationError, match="credentials"):
        ep.invoke(b"x")
    assert recorder.requests == []


# -- endpoint resolution -------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL"])
def test_endpoint_url_from_the_environment(
    runtime: ScriptedRuntime, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, runtime.url)
    ep = Endpoint("ep-1")
    assert ep.transport == "fast"
    assert ep.invoke(b"echo").body == b"echo"
    assert len(runtime.requests) == 1


def test_endpoint_url_argument_wins_over_the_environment(
    runtime: ScriptedRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://127.0.0.1:9")
    assert runtime.endpoint().invoke(b"echo").body == b"echo"


@pytest.mark.parametrize(
    ("variables", "host"),
    [
        ({}, "runtime.sagemaker.eu-west-1.amazonaws.com"),
        ({"AWS_USE_FIPS_ENDPOINT": "true"}, "runtime-fips.sagemaker.eu-west-1.amazonaws.com"),
        ({"AWS_USE_DUALSTACK_ENDPOINT": "true"}, "runtime.sagemaker.eu-west-1.api.aws"),
    ],
)
def test_region_fips_and_dual_stack_resolve_as_botocore(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], host: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    ep = Endpoint("ep-1", region="eu-west-1")
    fast = ep.requester.factory.transport()  # builds the transport; sends nothing
    assert fast.name == "fast"
    assert fast.url == f"https://{host}"  # type: ignore[attr-defined]
    assert ep.client().meta.endpoint_url == f"https://{host}"


def test_a_proxy_for_the_host_uses_boto3_unless_excluded(
    runtime: ScriptedRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert runtime.endpoint().transport == "boto3"
    with pytest.raises(ConfigurationError, match="proxy"):
        runtime.endpoint(config=ClientConfig(sign_requests=False, transport="fast")).invoke(b"x")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert runtime.endpoint().transport == "fast"


# -- the fallback: what botocore hooks must see ----------------------------------------------


def test_moto_mock_sees_every_call_and_fast_path_returns_after() -> None:
    ep = Endpoint("ep-1", region="us-east-1")
    with mock_aws():
        queue_moto_results([MotoResult("from moto")])
        assert ep.transport == "boto3"
        assert ep.invoke(b"x").text() == "from moto"
    assert ep.transport == "fast"


def test_stubber_sees_every_call(runtime: ScriptedRuntime) -> None:
    ep = runtime.endpoint()
    assert ep.transport == "fast"
    with Stubber(ep.client()) as stubber:
        stubber.add_response(
            "invoke_endpoint",
            {"Body": _streaming(b"stubbed")},
            {"EndpointName": "scripted", "Body": b"x"},
        )
        assert ep.transport == "boto3"
        assert ep.invoke(b"x").body == b"stubbed"
        stubber.assert_no_pending_responses()
    assert ep.transport == "fast"
    assert runtime.requests == []


def _streaming(data: bytes) -> Any:
    import io

    from botocore.response import StreamingBody

    return StreamingBody(io.BytesIO(data), len(data))


def test_user_event_handlers_see_every_call(runtime: ScriptedRuntime) -> None:
    seen: list[str] = []

    def trace(request: Any, **_kwargs: Any) -> None:
        seen.append(request.url)

    ep = runtime.endpoint()
    ep.client().meta.events.register("before-send.sagemaker-runtime.*", trace, unique_id="t")
    assert ep.transport == "boto3"
    ep.invoke(b"x")
    with ep.stream(b"y") as s:
        list(s)
    assert len(seen) == 2
    ep.client().meta.events.unregister("before-send.sagemaker-runtime.*", unique_id="t")
    assert ep.transport == "fast"
    ep.invoke(b"z")
    assert len(seen) == 2


def test_session_level_handlers_are_honoured(runtime: ScriptedRuntime) -> None:
    session = _session()
    calls: list[int] = []
    session.events.register(
        "before-call.sagemaker-runtime.InvokeEndpoint", lambda **_: calls.append(1)
    )
    ep = Endpoint("ep-1", endpoint_url=runtime.url, boto3_session=session)
    assert ep.transport == "boto3"
    ep.invoke(b"x")
    assert calls == [1]


def test_forcing_either_transport(
    runtime: ScriptedRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    ep = runtime.endpoint(config=ClientConfig(sign_requests=False, transport="fast"))
    with Stubber(ep.client()):
        assert ep.transport == "fast"  # forced: the stubber is bypassed, as documented
        assert ep.invoke(b"x").body == b"x"
    assert runtime.endpoint(config=ClientConfig(transport="boto3")).transport == "boto3"
    monkeypatch.setenv("SMCLIENT_TRANSPORT", "boto3")
    assert runtime.endpoint().transport == "boto3"
    monkeypatch.setenv("SMCLIENT_TRANSPORT", "fast")
    assert runtime.endpoint().transport == "fast"
    monkeypatch.setenv("SMCLIENT_TRANSPORT", "turbo")
    with pytest.raises(ConfigurationError, match="SMCLIENT_TRANSPORT"):
        runtime.endpoint().invoke(b"x")


# -- connections and failures ----------------------------------------------------------------


def _fast(url: str, **config: Any) -> Endpoint:
    config.setdefault("sign_requests", False)
    return Endpoint(
        "ep-1",
        endpoint_url=url,
        config=ClientConfig(transport="fast", **config),
        retry=RetryPolicy.never(),
    )


def test_connections_are_reused_and_a_closed_idle_one_is_replaced(recorder: Recorder) -> None:
    ep = _fast(recorder.url)
    for _ in range(3):
        ep.invoke(b"x")
    assert recorder.connections == 1
    recorder.answers.append((200, [("Connection", "close")], b"bye"))
    assert ep.invoke(b"x").body == b"bye"
    ep.invoke(b"x")
    assert recorder.connections == 2
    ep.close()


def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectError):
        _fast(f"http://127.0.0.1:{port}").invoke(b"x")


def test_stall_and_drop_are_typed(runtime: ScriptedRuntime) -> None:
    ep = _fast(runtime.url, read_timeout=0.2)
    runtime.queue(Reply.stall())
    with pytest.raises(ReadTimeoutError):
        ep.invoke(b"x")
    runtime.queue(Reply.drop())
    with pytest.raises(ConnectionClosedError):
        ep.invoke(b"x")
    assert _fast(runtime.url).invoke(b"ok").body == b"ok"  # default timeouts: a loaded CI


def test_a_truncated_body_is_connection_closed() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(ConnectionClosedError):
            _fast(f"http://127.0.0.1:{listener.getsockname()[1]}").invoke(b"x")
    finally:
        thread.join(5)
        listener.close()


# -- configuration checked at construction ---------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"read_timeout": float("nan")},
        {"read_timeout": float("inf")},
        {"read_timeout": -1},
        {"read_timeout": 0},
        {"connect_timeout": "10"},
        {"connect_timeout": True},
        {"max_pool_connections": 0},
        {"max_pool_connections": 1.5},
        {"max_pool_connections": "10"},
        {"sign_requests": "no"},
        {"user_agent_extra": "caf\u00e9"},
        {"user_agent_extra": "a\nb"},
        {"transport": "turbo"},
    ],
)
def test_client_config_refuses_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError) as info:
        ClientConfig(**kwargs)
    assert info.value.field == next(iter(kwargs))


def test_a_botocore_config_or_dict_is_a_configuration_error() -> None:
    from botocore.config import Config

    with pytest.raises(ConfigurationError, match="not a botocore Config"):
        Endpoint("ep-1", config=Config(read_timeout=5))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ClientConfig"):
        Endpoint("ep-1", config={"read_timeout": 5})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="RetryPolicy"):
        Endpoint("ep-1", retry={"timeout": 5})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "localhost:8080",
        "ftp://host",
        "http://",
        "http://host:0",
        "http://host:99999",
        "http://h/?q=1",
        8080,
    ],
)
def test_bad_endpoint_urls_are_refused(url: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        Endpoint("ep-1", endpoint_url=url)
    assert info.value.field == "endpoint_url"
    with pytest.raises(InvalidInputError):
        Endpoint("ep-1", aws_endpoint_url=url)


def test_validation_error_is_typed_on_the_fast_path(runtime: ScriptedRuntime) -> None:
    runtime.queue(Reply.error("ValidationError", 400, "nope"))
    with pytest.raises(ValidationError) as info:
        _fast(runtime.url).invoke(b"x")
    assert info.value.http_status == 400
    assert info.value.request_id


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture
def tls_runtime(tmp_path: Any) -> Iterator[tuple[str, str]]:
    """An HTTPS loopback server with a self-signed certificate for 127.0.0.1 (made with the
    openssl command line); yields its URL and the certificate's path."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command line to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = Recorder()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    yield server.url.replace("http://", "https://"), str(cert)
    server.close()


@pytest.mark.parametrize("transport", ["fast", "boto3"])
def test_tls_is_verified_against_aws_ca_bundle(
    tls_runtime: tuple[str, str], monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    url, cert = tls_runtime
    config = ClientConfig(transport=transport)  # type: ignore[arg-type]
    with pytest.raises(ConnectError):  # an unknown certificate: refused before sending
        Endpoint("ep-1", endpoint_url=url, config=config, retry=RetryPolicy.never()).invoke(b"x")
    monkeypatch.setenv("AWS_CA_BUNDLE", cert)
    ep = Endpoint("ep-1", endpoint_url=url, config=config)
    assert ep.transport == transport
    assert ep.invoke(b"x").body == b"ok"


def test_asking_for_the_transport_without_a_region_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ConfigurationError, match="region"):
        _ = Endpoint("ep-1").transport


def test_lambda_trace_header_matches_botocore(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
    fast, boto = _pair(recorder.url)
    fast.invoke(b"x")
    boto.invoke(b"x")
    assert (
        recorder.requests[0].get("X-Amzn-Trace-Id")
        == "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    )
    _same_wire(recorder.requests[0], recorder.requests[1], recorder.url, monkeypatch)


# -- second reading: wire cases found in review ---------------------------------------------


class OneShot:
    """A loopback server that answers each connection with the next raw bytes, then closes:
    for answers http.server cannot produce (short bodies, duplicate headers)."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for answer in self.answers:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)  # a client that went away must not hang the thread
                data = b""
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        break
                    data += more
                head, _sep, body = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    more = conn.recv(65536)
                    if not more:
                        break
                    body += more
                conn.sendall(answer)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


@pytest.mark.parametrize("transport", ["fast", "boto3"])
def test_a_stream_framed_by_content_length_and_cut_short_is_interrupted(transport: str) -> None:
    from smclient import StreamInterruptedError
    from smclient.local.server._eventstream import payload_part

    frame = payload_part(b"first")
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
        b"Content-Length: %d\r\n\r\n" % (len(frame) * 3)
    ) + frame  # a whole frame, then the connection closes two frames short
    server = OneShot([answer])
    try:
        ep = Endpoint(
            "ep-1",
            endpoint_url=server.url,
            config=ClientConfig(transport=transport),  # type: ignore[arg-type]
            retry=RetryPolicy.never(),
        )
        got: list[bytes] = []
        with pytest.raises(StreamInterruptedError), ep.stream(b"x") as s:
            got.extend(s)
        assert got == [b"first"]
    finally:
        server.close()


@pytest.mark.parametrize(
    ("url", "port", "host_header"),
    [
        ("http://[::1]", 80, "[::1]"),
        ("https://[::1]", 443, "[::1]"),
        ("http://[::1]:8080", 8080, "[::1]:8080"),
    ],
)
def test_an_ipv6_endpoint_without_a_port_connects_to_the_default_port(
    url: str, port: int, host_header: str
) -> None:
    # http.client reads a bare "::1" with no port as host "::" and port 1: the fast
    # transport must give the scheme's port itself (no socket is opened here).
    transport: Any = _fast(url).requester.factory.transport()
    assert transport.template.host == host_header
    conn, reused = transport._pool.get()
    assert not reused
    assert (conn.host, conn.port) == ("::1", port)


def _answers_for_both(answer: bytes) -> tuple[OneShot, list[Endpoint]]:
    server = OneShot([answer, answer])
    return server, [
        Endpoint(
            "ep-1",
            endpoint_url=server.url,
            config=ClientConfig(transport=t),  # type: ignore[arg-type]
            retry=RetryPolicy.never(),
        )
        for t in ("fast", "boto3")
    ]


def test_repeated_headers_and_the_other_request_id_header_parse_as_botocore() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        b"X-Amzn-SageMaker-Custom-Attributes: a=1\r\n"
        b"x-amzn-sagemaker-custom-attributes: b=2\r\n"
        b"x-amz-request-id: RID-1\r\nContent-Length: 2\r\n\r\nok"
    )
    server, endpoints = _answers_for_both(answer)
    try:
        fast, boto = (ep.invoke(b"x") for ep in endpoints)
        assert boto.custom_attributes == "a=1, b=2"  # urllib3 joins repeated headers
        assert boto.request_id == "RID-1"  # botocore's rest-json fallback header
        assert (fast.custom_attributes, fast.request_id) == (
            boto.custom_attributes,
            boto.request_id,
        )
    finally:
        server.close()


def test_stream_metadata_reads_repeated_headers_and_the_other_request_id_header() -> None:
    from smclient.local.server._eventstream import payload_part

    frame = payload_part(b"hi")
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
        b"X-Amzn-SageMaker-Custom-Attributes: a=1\r\n"
        b"X-Amzn-SageMaker-Custom-Attributes: b=2\r\n"
        b"x-amz-request-id: RID-2\r\nContent-Length: %d\r\n\r\n" % len(frame)
    ) + frame
    server, endpoints = _answers_for_both(answer)
    try:
        seen = []
        for ep in endpoints:
            with ep.stream(b"x") as s:
                assert s.text() == "hi"
                seen.append((s.custom_attributes, s.request_id))
        assert seen == [("a=1, b=2", "RID-2")] * 2
    finally:
        server.close()


def test_a_before_parse_handler_sees_every_call(runtime: ScriptedRuntime) -> None:
    # botocore emits before-parse on every call (it may rewrite the answer): a user's
    # handler there must send the call through the boto3 client, like any other event.
    seen: list[int] = []

    def rewrite(response_dict: Any, **_kwargs: Any) -> None:
        seen.append(response_dict["status_code"])

    ep = runtime.endpoint()
    assert ep.transport == "fast"  # smclient's own before-parse hook does not count
    event = "before-parse.sagemaker-runtime.InvokeEndpoint"
    ep.client().meta.events.register(event, rewrite, unique_id="bp")
    assert ep.transport == "boto3"
    ep.invoke(b"x")
    assert seen == [200]
    ep.client().meta.events.unregister(event, unique_id="bp")
    assert ep.transport == "fast"


@pytest.mark.parametrize(
    "prefix", ["/v1/", "/a%20b", "/a:b+c=d", "/a,b;c*", "/x/./y//z", "/caf%C3%A9"]
)
def test_a_path_prefix_is_signed_as_botocore_signs_it(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    # SigV4 signs the path normalised and percent-encoded again (botocore's SigV4Auth); the
    # request line keeps it as given. _same_wire recomputes both signatures with botocore.
    fast, boto = _pair(recorder.url + prefix)
    fast.invoke(b"x")
    boto.invoke(b"x")
    _same_wire(recorder.requests[0], recorder.requests[1], recorder.url, monkeypatch)


def test_the_signing_time_is_never_a_stale_one_under_threads() -> None:
    # Thread A signs after an hour's idle and is preempted right after its first write to
    # the signer's clock cache; thread B signing in that new second must not read the
    # hour-old X-Amz-Date (AWS refuses signatures more than 5 minutes off).
    from botocore.credentials import Credentials as Creds

    from smclient._fasthttp import Signer

    paused, resume = threading.Event(), threading.Event()
    owner: list[int] = []

    class PausingSigner(Signer):
        def __setattr__(self, name: str, value: Any) -> None:
            super().__setattr__(name, value)
            if owner and threading.get_ident() == owner[0] and not paused.is_set():
                paused.set()
                resume.wait(10)

    signer = PausingSigner(Creds("AKID", "secret"), "us-east-1")
    earlier = datetime.datetime(2026, 1, 1, 10, 0, 0, tzinfo=datetime.timezone.utc).timestamp()
    signer.sign("/p", "h", [], b"", earlier)
    results: dict[str, list[tuple[str, str]]] = {}

    def sign_a() -> None:
        owner.append(threading.get_ident())
        results["a"] = signer.sign("/p", "h", [], b"", earlier + 3600)

    thread = threading.Thread(target=sign_a)
    thread.start()
    try:
        assert paused.wait(10)
        results["b"] = signer.sign("/p", "h", [], b"", earlier + 3600.5)
    finally:
        resume.set()
        thread.join(10)
    assert dict(results["b"])["X-Amz-Date"] == "20260101T110000Z"
    assert dict(results["a"])["X-Amz-Date"] == "20260101T110000Z"


def test_lambda_trace_header_is_escaped_and_read_per_call_as_botocore_does(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, boto = _pair(recorder.url)
    fast.invoke(b"x")  # the transport exists before the Lambda variables appear
    boto.invoke(b"x")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-abc;Lineage=a b\u00e9\r\nX-Injected: 1")
    fast.invoke(b"x")
    boto.invoke(b"x")
    fast_raw, boto_raw = recorder.requests[2], recorder.requests[3]
    assert boto_raw.get("X-Amzn-Trace-Id") == "Root=1-abc;Lineage=a%20b%C3%A9%0D%0AX-Injected:%201"
    assert fast_raw.get("X-Injected") is None
    _same_wire(fast_raw, boto_raw, recorder.url, monkeypatch)


def test_connections_are_reused_when_descriptors_are_above_select_limit(
    recorder: Recorder,
) -> None:
    # select() refuses descriptors >= FD_SETSIZE (1024): a busy process's sockets are there,
    # and the idle check must not take every pooled connection for a dropped one.
    import os
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip(f"needs 1200 file descriptors, the limit is {soft}")
    fillers = []
    try:
        while not fillers or fillers[-1] < 1100:
            fillers.append(os.open(os.devnull, os.O_RDONLY))
        ep = _fast(recorder.url)
        for _ in range(3):
            ep.invoke(b"x")
        assert recorder.connections == 1
        ep.close()
    finally:
        for fd in fillers:
            os.close(fd)


@pytest.mark.parametrize("transport", ["fast", "boto3"])
def test_an_answer_sent_before_the_body_was_read_is_the_error(transport: str) -> None:
    # A front end may refuse a request from its headers alone (400, 403, 413) and close
    # without reading the body: the write then fails, but the answer is there to read.
    # urllib3 (so boto3) reads it; the fast transport must not turn it into a connection error.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    answer = b'{"message":"refused before the body"}'

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                more = conn.recv(65536)
                if not more:
                    return
                data += more
            conn.sendall(
                b"HTTP/1.1 400 Bad Request\r\nx-amzn-ErrorType: ValidationError\r\n"
                b"Content-Type: application/json\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer)
            )  # then closed with the body unread: the client's write fails

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        ep = Endpoint(
            "ep-1",
            endpoint_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
            config=ClientConfig(transport=transport),  # type: ignore[arg-type]
            retry=RetryPolicy.never(),
        )
        with pytest.raises(ValidationError, match="refused before the body") as info:
            ep.invoke(b"a" * 6_000_000)
        assert info.value.http_status == 400
    finally:
        thread.join(5)
        listener.close()


# -- follow-ups: the asyncio transport against the same raw answers --------------------------


def _async_stream_metadata(url: str) -> tuple[str | None, str]:
    import asyncio

    from smclient import AsyncEndpoint

    async def main() -> tuple[str | None, str]:
        async with (
            AsyncEndpoint(
                "ep-1",
                endpoint_url=url,
                config=ClientConfig(transport="fast", sign_requests=False),
                retry=RetryPolicy.never(),
            ) as ep,
            ep.stream(b"x") as s,
        ):
            text = await s.text()
            return s.request_id, text

    return asyncio.run(main())


def test_async_stream_request_id_falls_back_to_the_other_header() -> None:
    from smclient.local.server._eventstream import payload_part

    frame = payload_part(b"hi")
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
        b"x-amz-request-id: RID-3\r\nContent-Length: %d\r\n\r\n" % len(frame)
    ) + frame
    server = OneShot([answer])
    try:
        assert _async_stream_metadata(server.url) == ("RID-3", "hi")
    finally:
        server.close()


class OneAnswerPerConnection:
    """A loopback server that answers the first request on each connection and then keeps
    the connection open, closing it unanswered if a second request arrives on it: a client
    that reuses a connection the answer told it to drop fails there, deterministically."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.connections = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)  # a client that went away must not hang the thread
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                conn.sendall(self.answer)
                conn.recv(65536)  # a second request (closed unanswered) or the client's close
            except OSError:
                return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        self.listener.close()
        self.thread.join(5)
        for thread in self.threads:
            thread.join(5)


def _two_async_invokes(url: str) -> list[bytes]:
    import asyncio

    from smclient import AsyncEndpoint

    async def main() -> list[bytes]:
        async with AsyncEndpoint(
            "ep-1",
            endpoint_url=url,
            config=ClientConfig(transport="fast", sign_requests=False),
            retry=RetryPolicy.never(),
        ) as ep:
            return [(await ep.invoke(b"x")).body for _ in range(2)]

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("status_line", "connection", "connections"),
    [
        ("HTTP/1.0 200 OK", None, 2),
        ("HTTP/1.0 200 OK", "keep-alive, close", 2),
        ("HTTP/1.1 200 OK", "Close", 2),
        ("HTTP/1.1 200 OK", "upgrade, close", 2),
        ("HTTP/1.0 200 OK", "Keep-Alive", 1),
        ("HTTP/1.1 200 OK", None, 1),
    ],
)
def test_async_transport_reuses_a_connection_only_when_the_answer_allows_it(
    status_line: str, connection: str | None, connections: int
) -> None:
    head = f"{status_line}\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    if connection is not None:
        head += f"Connection: {connection}\r\n"
    server = OneAnswerPerConnection(head.encode() + b"\r\nok")
    try:
        if connections == 1:
            # A kept connection is reused: the server closes it unanswered on the second
            # request, so the second call fails - proof that the first one was pooled.
            with pytest.raises(ConnectionClosedError):
                _two_async_invokes(server.url)
        else:
            assert _two_async_invokes(server.url) == [b"ok", b"ok"]
        assert server.connections == connections
    finally:
        server.close()


def _async_invoke(url: str) -> bytes:
    import asyncio

    from smclient import AsyncEndpoint

    async def main() -> bytes:
        async with AsyncEndpoint(
            "ep-1",
            endpoint_url=url,
            config=ClientConfig(transport="fast", sign_requests=False),
            retry=RetryPolicy.never(),
        ) as ep:
            return (await ep.invoke(b"x")).body

    return asyncio.run(main())


@pytest.mark.parametrize("transport", ["fast", "asyncio", "boto3"])
def test_a_typed_error_answer_cut_short_is_the_typed_error(transport: str) -> None:
    from smclient import ModelNotReadyError

    body = b'{"message":"Model model.tar.gz is not ready yet, please retry"}'
    answer = (
        b"HTTP/1.1 429 Too Many Requests\r\nx-amzn-ErrorType: ModelNotReadyException:\r\n"
        b"x-amzn-RequestId: RID-429\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body) + 40, body)
    )  # 40 bytes promised and never sent: the connection closes after the body
    server = OneShot([answer])
    try:
        call = (
            _async_invoke
            if transport == "asyncio"
            else lambda url: Endpoint(
                "ep-1",
                endpoint_url=url,
                config=ClientConfig(transport=transport),  # type: ignore[arg-type]
                retry=RetryPolicy.never(),
            ).invoke(b"x")
        )
        with pytest.raises(ModelNotReadyError) as info:
            call(server.url)
        assert info.value.http_status == 429
        assert info.value.request_id == "RID-429"
        assert "not ready yet" in str(info.value)
    finally:
        server.close()


@pytest.mark.parametrize("status_line", ["HTTP/1.1 200 OK", "HTTP/1.1 500 Internal Server Error"])
def test_a_cut_success_or_untyped_error_is_still_connection_closed(status_line: str) -> None:
    answer = status_line.encode() + b"\r\nContent-Length: 100\r\n\r\nonly part"
    server = OneShot([answer, answer])
    try:
        with pytest.raises(ConnectionClosedError):
            _async_invoke(server.url)
        with pytest.raises(ConnectionClosedError):
            _fast(server.url).invoke(b"x")
    finally:
        server.close()


@pytest.mark.parametrize("transport", ["fast", "boto3"])
@pytest.mark.parametrize("body", [b"[]", b'"x"', b"7"])
def test_a_202_whose_body_is_not_an_object_is_an_smclient_error(
    transport: str, body: bytes, aws_env: None
) -> None:
    # botocore's parser raised a plain AttributeError for these on the boto3 transport.
    answer = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n" + (
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    server = OneShot([answer])
    try:
        ep = Endpoint(
            "ep-1",
            region="us-east-1",
            endpoint_url=server.url,
            config=ClientConfig(transport=transport),  # type: ignore[arg-type]
            retry=RetryPolicy.never(),
        )
        with pytest.raises(SMClientError) as info:
            ep.submit(input_location="s3://bucket/in.json")
        assert info.value.operation == "InvokeEndpointAsync"  # type: ignore[attr-defined]
        assert info.value.endpoint == "ep-1"  # type: ignore[attr-defined]
    finally:
        server.close()
