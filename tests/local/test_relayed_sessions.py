"""Stateful sessions made by the model, as on SageMaker (protocol.md §4): the runtime forwards
NEW_SESSION and CLOSE requests with their bodies, relays the container's session headers as
NewSessionId / ClosedSessionId, and routes the id to the instance that answered. Containers
are the in-repo fake (tests/local/fake_container.py); Python handlers use StatefulHandler."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from smclient.local import (
    EndpointSpec,
    HandlerError,
    HandlerReply,
    LocalEndpoint,
    LocalRuntime,
    StatefulHandler,
)

from .fake_container import FakeContainer

OPEN = json.dumps({"requestType": "NEW_SESSION", "prompt": "hello"}).encode()
CLOSE = json.dumps({"requestType": "CLOSE"}).encode()


def call(client: Any, body: bytes, session: str | None = None, **kw: Any) -> dict[str, Any]:
    if session is not None:
        kw["SessionId"] = session
    response = client.invoke_endpoint(EndpointName="byoc", Body=body, **kw)
    response["Body"] = response["Body"].read()
    return response  # type: ignore[no-any-return]


def session_of(response: dict[str, Any]) -> str:
    new = response["NewSessionId"]
    assert re.fullmatch(r"[0-9a-f]{32}; Expires=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", new), new
    return str(new.split(";")[0])


@pytest.mark.parametrize("multi_model", [False, True])
def test_open_use_close_relayed_from_the_container(
    multi_model: bool, tmp_path: Path, client_for: Any
) -> None:
    kw: dict[str, Any] = {}
    if multi_model:
        (tmp_path / "m").mkdir()
        kw = {"container_multi_model": True, "model_root": tmp_path}
    with (
        FakeContainer(single_model=not multi_model, sessions=True) as fake,
        LocalEndpoint(name="byoc", container_url=fake.url, **kw) as local,
    ):
        client = client_for(local.url)
        target = {"TargetModel": "m"} if multi_model else {}
        opened = call(client, OPEN, "NEW_SESSION", **target)
        session = session_of(opened)
        # The container made the id (and saw the opening body unchanged).
        assert json.loads(opened["Body"]) == {"opened": session}
        assert fake.session_bodies == [OPEN]
        assert [s.session_id for s in local.sessions()] == [session]

        used = call(client, b"turn 2", session, **target)
        assert used["Body"] == b"turn 2"
        last = fake.requests[-1]
        assert last.headers["x-amzn-sagemaker-session-id"] == session

        closed = call(client, CLOSE, session, **target)
        assert closed["ClosedSessionId"] == session
        assert json.loads(closed["Body"]) == {"closed": session}
        assert fake.requests[-1].body == CLOSE
        assert local.sessions() == []
        # The runtime knows the id is closed and says so without asking the container.
        before = len(fake.requests)
        with pytest.raises(ClientError) as info:
            call(client, b"late", session, **target)
        assert info.value.response["Error"]["Code"] == "ValidationError"
        assert "was closed" in info.value.response["Error"]["Message"]
        assert len(fake.requests) == before


def test_a_container_without_sessions_answers_no_session_id(client_for: Any) -> None:
    with (
        FakeContainer(single_model=True) as fake,
        LocalEndpoint(name="byoc", container_url=fake.url) as local,
    ):
        opened = call(client_for(local.url), OPEN, "NEW_SESSION")
        assert "NewSessionId" not in opened
        assert opened["Body"] == OPEN  # the request reached the container, body unchanged
        assert local.sessions() == []


def test_the_containers_expiry_is_kept(client_for: Any) -> None:
    header = "abc-123; Expires=2030-01-02T03:04:05Z"
    with (
        FakeContainer(single_model=True, sessions=True, session_header=header) as fake,
        LocalEndpoint(name="byoc", container_url=fake.url) as local,
    ):
        opened = call(client_for(local.url), OPEN, "NEW_SESSION")
        assert opened["NewSessionId"] == header
        (info,) = local.sessions()
        assert info.expires_at == 1893553445.0


@pytest.mark.parametrize(
    "header", ["bad id; Expires=2030-01-01T00:00:00Z", "abc; Expires=soon", "abc; Ttl=5"]
)
def test_a_malformed_session_header_is_a_model_error(header: str, client_for: Any) -> None:
    with (
        FakeContainer(single_model=True, sessions=True, session_header=header) as fake,
        LocalEndpoint(name="byoc", container_url=fake.url) as local,
    ):
        with pytest.raises(ClientError) as info:
            call(client_for(local.url), OPEN, "NEW_SESSION")
        assert info.value.response["Error"]["Code"] == "ModelError"
        assert info.value.response["OriginalStatusCode"] == 502
        assert "session header" in info.value.response["OriginalMessage"]
        assert local.sessions() == []


def test_the_smclient_session_works_against_a_container(client_for: Any) -> None:
    with (
        FakeContainer(single_model=True, sessions=True) as fake,
        LocalEndpoint(name="byoc", container_url=fake.url) as local,
    ):
        endpoint = local.endpoint()
        with endpoint.session() as session:
            assert session.invoke(b"in session").body == b"in session"
            assert fake.requests[-1].headers["x-amzn-sagemaker-session-id"] == session.id
        # smclient's default close body ({"requestType": "CLOSE"}) reached the container.
        assert fake.open_sessions == set()
        assert len(fake.session_bodies) == 1


# -- Python handlers taking part ------------------------------------------------------------


class Chat:
    """A handler class: each instance gets its own object, hence its own sessions."""

    def __init__(self) -> None:
        self.stateful = StatefulHandler(self.answer, open=lambda body: {"turns": []})

    def answer(self, body: bytes, content_type: Any, accept: Any, session: Any) -> bytes:
        if session is None:
            return b"stateless"
        session["turns"].append(body.decode())
        return json.dumps({"instance": id(self), "turns": session["turns"]}).encode()

    def predict(
        self, body: bytes, content_type: Any, accept: Any, session_id: str | None = None
    ) -> HandlerReply:
        return self.stateful.predict(body, content_type, accept, session_id)


def test_stateful_handler_sessions_stick_to_the_instance_that_opened_them(
    client_for: Any,
) -> None:
    with LocalRuntime([EndpointSpec("byoc", handler=Chat, instance_count=3)]) as runtime:
        client = client_for(runtime.url)
        sessions = [session_of(call(client, OPEN, "NEW_SESSION")) for _ in range(3)]
        owners = {s.session_id: s.instance for s in runtime.sessions()}
        assert sorted(owners.values()) == [0, 1, 2]  # round robin over the instances
        for turn in ("a", "b"):
            for session in sessions:
                call(client, turn.encode(), session)
        answers = [json.loads(call(client, b"c", s)["Body"]) for s in sessions]
        assert [a["turns"] for a in answers] == [["a", "b", "c"]] * 3
        assert len({a["instance"] for a in answers}) == 3
        closed = call(client, CLOSE, sessions[0])
        assert closed["ClosedSessionId"] == sessions[0]
        assert len(runtime.sessions()) == 2
        assert call(client, b"x")["Body"] == b"stateless"


def test_stateful_handler_unknown_and_expired_ids() -> None:
    now = [1000.0]
    closed: list[object] = []
    handler = StatefulHandler(
        lambda body, ct, accept, session: b"ok",
        close=closed.append,
        ttl=60,
        clock=lambda: now[0],
    )
    opened = handler.predict(b"", None, None, "NEW_SESSION")
    assert opened.new_session_id is not None
    session_id = opened.new_session_id.split(";")[0]
    assert opened.new_session_id.endswith("Expires=1970-01-01T00:17:40Z")
    assert handler.predict(b"q", None, None, session_id).body == b"ok"
    now[0] += 61
    with pytest.raises(HandlerError) as info:
        handler.predict(b"q", None, None, session_id)
    assert info.value.status_code == 400
    assert closed == [{}]  # the expired context was closed
    with pytest.raises(HandlerError):
        handler.predict(b"q", None, None, "never-opened")
    with pytest.raises(ValueError, match="ttl"):
        StatefulHandler(lambda *a: b"", ttl=0)


def test_stateful_handler_close_releases_every_session() -> None:
    closed: list[object] = []
    handler = StatefulHandler(lambda *a: b"", open=lambda body: body, close=closed.append)
    for body in (b"1", b"2"):
        handler.predict(body, None, None, "NEW_SESSION")
    assert handler.open_sessions == 2
    handler.close()
    assert sorted(closed) == [b"1", b"2"]  # type: ignore[type-var]
    assert handler.open_sessions == 0


def test_a_plain_function_taking_session_id_runs_its_own_sessions(client_for: Any) -> None:
    seen: list[str | None] = []

    def predict(body: bytes, ct: Any, accept: Any, session_id: str | None = None) -> HandlerReply:
        seen.append(session_id)
        if session_id == "NEW_SESSION":
            return HandlerReply(b"opened", new_session_id="mine-1")  # bare id: session_ttl
        if body == b"bye":
            return HandlerReply(b"closed", closed_session_id=session_id)
        return HandlerReply(b"used")

    with LocalEndpoint(predict, name="byoc", session_ttl=30, clock=lambda: 0.0) as local:
        client = client_for(local.url)
        opened = call(client, b"hi", "NEW_SESSION")
        assert opened["NewSessionId"] == "mine-1; Expires=1970-01-01T00:00:30Z"
        assert call(client, b"more", "mine-1")["Body"] == b"used"
        assert call(client, b"bye", "mine-1")["ClosedSessionId"] == "mine-1"
        assert seen == ["NEW_SESSION", "mine-1", "mine-1"]


def test_a_relayed_session_streams_on_its_instance_with_its_id(client_for: Any) -> None:
    class Streaming:
        def predict(self, body: bytes, ct: Any, accept: Any, session_id: Any = None) -> Any:
            return HandlerReply(b"opened", new_session_id="s-1")

        def stream(
            self, body: bytes, ct: Any, accept: Any, session: Any = None, session_id: Any = None
        ) -> Any:
            yield f"{session!r}/{session_id}".encode()

    with LocalEndpoint(Streaming(), name="byoc") as local:
        client = client_for(local.url)
        assert call(client, b"", "NEW_SESSION")["NewSessionId"].startswith("s-1; Expires=")
        response = client.invoke_endpoint_with_response_stream(
            EndpointName="byoc", Body=b"", SessionId="s-1"
        )
        parts = b"".join(e["PayloadPart"]["Bytes"] for e in response["Body"])
        assert parts == b"None/s-1"
