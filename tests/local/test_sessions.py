"""Stateful sessions: several instances, sticky routing, expiry, close conventions."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from smclient.local import EndpointSpec, HandlerError, LocalRuntime
from smclient.local.sessions._store import format_expires, is_close_request


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # 2027-01-15T08:00:00Z

    def __call__(self) -> float:
        return self.now


class Chat:
    """Keeps a per-session transcript; records which instance object served a call."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.opened: list[dict[str, Any]] = []
        self.closed: list[dict[str, Any]] = []

    def open_session(self, body: bytes) -> dict[str, Any]:
        if body == b"refuse":
            raise HandlerError("no capacity", 503)
        if body == b"crash":
            raise KeyError("secret")
        context: dict[str, Any] = {"turns": []}
        with self.lock:
            self.opened.append(context)
        return context

    def close_session(self, context: dict[str, Any]) -> None:
        with self.lock:
            self.closed.append(context)

    def predict(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        session: dict[str, Any] | None = None,
    ) -> bytes:
        if session is None:
            return b"stateless"
        session["turns"].append(body.decode())
        return json.dumps(session["turns"]).encode()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def chat() -> Chat:
    return Chat()


@pytest.fixture
def runtime(clock: Clock, chat: Chat) -> Iterator[LocalRuntime]:
    specs = [
        EndpointSpec("chat", handler=chat, instance_count=3, session_ttl=600, clock=clock),
        EndpointSpec("plain", handler=lambda b, c, a, session=None: json.dumps(session).encode()),
    ]
    with LocalRuntime(specs) as rt:
        yield rt


def open_session(client: Any, endpoint: str = "chat", body: bytes = b"{}") -> str:
    response = client.invoke_endpoint(EndpointName=endpoint, Body=body, SessionId="NEW_SESSION")
    header = response["NewSessionId"]
    response["Body"].read()  # returns the connection to the pool
    assert re.fullmatch(
        r"[a-zA-Z0-9](-*[a-zA-Z0-9])*; Expires=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", header
    )
    return str(header.split(";")[0])


def test_new_session_header_and_expiry(
    runtime: LocalRuntime, client_for: Any, clock: Clock
) -> None:
    client = client_for(runtime.url)
    response = client.invoke_endpoint(EndpointName="chat", Body=b"{}", SessionId="NEW_SESSION")
    session_id, expires = response["NewSessionId"].split("; Expires=")
    assert expires == "2027-01-15T08:10:00Z"
    assert json.loads(response["Body"].read())["SessionId"] == session_id
    [info] = runtime.sessions("chat")
    assert info.session_id == session_id
    assert info.expires_at == clock.now + 600


def test_sticky_routing_across_instances(runtime: LocalRuntime, client_for: Any) -> None:
    client = client_for(runtime.url)
    ids = [open_session(client) for _ in range(3)]
    instances = {info.session_id: info.instance for info in runtime.sessions("chat")}
    assert sorted(instances.values()) == [0, 1, 2]  # one session per instance, round robin
    for turn in ("a", "b"):
        for session_id in ids:
            body = client.invoke_endpoint(
                EndpointName="chat", Body=turn.encode(), SessionId=session_id
            )["Body"].read()
            assert json.loads(body)[-1] == turn
    status = runtime.status()["endpoints"]["chat"]
    for index, instance in enumerate(status["instances"]):
        owner = next(s for s, i in instances.items() if i == index)
        assert instance["sessions"] == 1
        assert instance["invocations"] == 2, owner  # both turns of its session, nothing else


def test_requests_without_session_spread_round_robin(
    runtime: LocalRuntime, client_for: Any
) -> None:
    client = client_for(runtime.url)
    for _ in range(6):
        assert client.invoke_endpoint(EndpointName="chat", Body=b"x")["Body"].read() == (
            b"stateless"
        )
    counts = [i["invocations"] for i in runtime.status()["endpoints"]["chat"]["instances"]]
    assert counts == [2, 2, 2]


@pytest.mark.parametrize(
    "close_body",
    [
        b'{"requestType": "CLOSE"}',
        b'{"requestType": "CLOSE_SESSION"}',
        b'{"type": "close_session"}',
    ],
)
def test_close_conventions(
    runtime: LocalRuntime, client_for: Any, chat: Chat, close_body: bytes
) -> None:
    client = client_for(runtime.url)
    session_id = open_session(client)
    client.invoke_endpoint(EndpointName="chat", Body=b"hello", SessionId=session_id)["Body"].read()
    response = client.invoke_endpoint(EndpointName="chat", Body=close_body, SessionId=session_id)
    assert response["ClosedSessionId"] == session_id
    assert json.loads(response["Body"].read()) == {"ClosedSessionId": session_id}
    assert chat.closed == [{"turns": ["hello"]}]
    assert runtime.sessions("chat") == []
    with pytest.raises(ClientError) as info:
        client.invoke_endpoint(EndpointName="chat", Body=b"again", SessionId=session_id)
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert f"session {session_id} was closed" in info.value.response["Error"]["Message"]


def test_unknown_session_is_rejected(runtime: LocalRuntime, client_for: Any) -> None:
    with pytest.raises(ClientError) as info:
        client_for(runtime.url).invoke_endpoint(EndpointName="chat", Body=b"x", SessionId="abc-123")
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert "session abc-123 does not exist" in info.value.response["Error"]["Message"]


def test_expired_session_is_rejected_and_released(
    runtime: LocalRuntime, client_for: Any, clock: Clock, chat: Chat
) -> None:
    client = client_for(runtime.url)
    session_id = open_session(client)
    clock.now += 599
    client.invoke_endpoint(EndpointName="chat", Body=b"still", SessionId=session_id)["Body"].read()
    clock.now += 1
    with pytest.raises(ClientError) as info:
        client.invoke_endpoint(EndpointName="chat", Body=b"late", SessionId=session_id)
    assert "has expired" in info.value.response["Error"]["Message"]
    assert chat.closed == [{"turns": ["still"]}]


def test_open_failure_is_model_error(runtime: LocalRuntime, client_for: Any) -> None:
    with pytest.raises(ClientError) as info:
        client_for(runtime.url).invoke_endpoint(
            EndpointName="chat", Body=b"refuse", SessionId="NEW_SESSION"
        )
    assert info.value.response["Error"]["Code"] == "ModelError"
    assert info.value.response["OriginalStatusCode"] == 503


def test_open_crash_is_model_error_500(runtime: LocalRuntime, client_for: Any) -> None:
    with pytest.raises(ClientError) as info:
        client_for(runtime.url).invoke_endpoint(
            EndpointName="chat", Body=b"crash", SessionId="NEW_SESSION"
        )
    assert info.value.response["Error"]["Code"] == "ModelError"
    assert info.value.response["OriginalStatusCode"] == 500
    assert "secret" not in info.value.response["OriginalMessage"]
    assert runtime.sessions("chat") == []


def test_default_context_without_session_methods(runtime: LocalRuntime, client_for: Any) -> None:
    client = client_for(runtime.url)
    session_id = open_session(client, "plain")
    body = client.invoke_endpoint(EndpointName="plain", Body=b"x", SessionId=session_id)
    assert json.loads(body["Body"].read()) == {}
    closed = client.invoke_endpoint(
        EndpointName="plain", Body=b'{"requestType": "CLOSE"}', SessionId=session_id
    )
    assert closed["ClosedSessionId"] == session_id
    closed["Body"].read()


def test_sessions_released_on_shutdown(clock: Clock, chat: Chat, client_for: Any) -> None:
    with LocalRuntime([EndpointSpec("chat", handler=chat, clock=clock)]) as rt:
        open_session(client_for(rt.url))
    assert len(chat.closed) == 1


@pytest.mark.parametrize(
    ("body", "closes"),
    [
        (b"CLOSE_SESSION", True),
        (b'{"requestType": "close"}', True),
        (b'{"requestType": "NEW_SESSION"}', False),
        (b"[1, 2]", False),
        (b"not json", False),
        (b" " * 5000, False),
    ],
)
def test_close_detection(body: bytes, closes: bool) -> None:
    assert is_close_request(body) is closes


def test_format_expires() -> None:
    assert format_expires(0) == "1970-01-01T00:00:00Z"
