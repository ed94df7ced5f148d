"""Session against the local endpoint with several instances: sticky routing to the instance
holding the context, close frees it on the server, expiry and rejection, threads, and a
session resumed in another process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from smclient import Endpoint
from smclient._session import Session
from smclient._session_info import (
    SessionClosedError,
    SessionError,
    SessionExpiredError,
    SessionHeaderError,
    SessionInfo,
    SessionProtocol,
    SessionState,
)
from smclient.local import EndpointSpec, LocalRuntime

pytestmark = pytest.mark.usefixtures("each_transport")


class Clock:
    """Seconds since the epoch, shared by the server and the client; moved by the test."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # 2027-01-15T08:00:00Z

    def __call__(self) -> float:
        return self.now


class DocQA:
    """A model that caches the document given when a session opens and answers from it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.opened: list[dict[str, Any]] = []
        self.closed: list[dict[str, Any]] = []
        self.events: list[str] = []
        self.active = 0
        self.max_active = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def open_session(self, body: bytes) -> dict[str, Any]:
        context: dict[str, Any] = {"document": json.loads(body)["document"], "turns": []}
        with self.lock:
            self.opened.append(context)
        return context

    def close_session(self, context: dict[str, Any]) -> None:
        with self.lock:
            self.closed.append(context)
            self.events.append("closed")

    def predict(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        session: dict[str, Any] | None = None,
    ) -> bytes:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if body == b"slow":
                self.entered.set()
                assert self.release.wait(5.0)
            if session is None:
                return json.dumps({"cached": None}).encode()
            session["turns"].append(body.decode())
            return json.dumps(
                {"cached": session["document"], "turn": len(session["turns"])}
            ).encode()
        finally:
            with self.lock:
                self.active -= 1
                self.events.append(f"answered {body.decode()}")

    def stream(
        self, body: bytes, content_type: str | None, accept: str | None, session: Any = None
    ) -> Iterator[bytes]:
        document = session["document"] if session else "none"
        for word in document.split():
            yield f"{word}\n".encode()


class WatchedLock:
    """A session's lock that sets ``waiting`` when a thread asks for it."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.waiting = threading.Event()

    def acquire(self, timeout: float = -1) -> bool:
        self.waiting.set()
        return bool(self.lock.acquire(timeout=timeout))

    def release(self) -> None:
        self.lock.release()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def model() -> DocQA:
    return DocQA()


@pytest.fixture
def local(clock: Clock, model: DocQA) -> Iterator[LocalRuntime]:
    spec = EndpointSpec("docs", handler=model, instance_count=3, session_ttl=600, clock=clock)
    with LocalRuntime([spec]) as runtime:
        yield runtime


@pytest.fixture
def endpoint(local: LocalRuntime) -> Endpoint:
    return local.endpoint("docs")


def invocations(local: LocalRuntime) -> list[int]:
    return [i["invocations"] for i in local.status()["endpoints"]["docs"]["instances"]]


def instance_of(local: LocalRuntime, session_id: str) -> int:
    return {s.session_id: s.instance for s in local.sessions("docs")}[session_id]


def test_session_calls_reach_the_instance_holding_the_context(
    local: LocalRuntime, endpoint: Endpoint, clock: Clock
) -> None:
    with (
        Session.open(endpoint, open_body={"document": "alpha"}, clock=clock) as a,
        Session.open(endpoint, open_body={"document": "beta"}, clock=clock) as b,
    ):
        home_a, home_b = instance_of(local, a.id), instance_of(local, b.id)
        assert home_a != home_b
        for turn in range(1, 5):
            assert a.invoke(b"q").json() == {"cached": "alpha", "turn": turn}
        for turn in range(1, 4):
            assert b.invoke(b"q").json() == {"cached": "beta", "turn": turn}
        for _ in range(6):  # without a session: spread over all instances
            assert endpoint.invoke(b"q").json() == {"cached": None}
        expected = [2, 2, 2]
        expected[home_a] += 4
        expected[home_b] += 3
        assert invocations(local) == expected


def test_close_frees_the_context_on_the_server(
    local: LocalRuntime, endpoint: Endpoint, model: DocQA, clock: Clock
) -> None:
    with Session.open(endpoint, open_body={"document": "alpha"}, clock=clock) as s:
        s.invoke(b"hello")
        assert [info.session_id for info in local.sessions("docs")] == [s.id]
    assert local.sessions("docs") == []
    assert model.closed == [{"document": "alpha", "turns": ["hello"]}]
    assert s.state is SessionState.CLOSED


def test_an_exception_in_the_block_still_closes_it_on_the_server(
    local: LocalRuntime, endpoint: Endpoint, model: DocQA, clock: Clock
) -> None:
    def use_and_fail() -> None:
        with Session.open(endpoint, open_body={"document": "alpha"}, clock=clock) as s:
            s.invoke(b"before the error")
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        use_and_fail()
    assert local.sessions("docs") == []
    assert model.closed == [{"document": "alpha", "turns": ["before the error"]}]


def test_expiry_is_checked_before_sending(
    local: LocalRuntime, endpoint: Endpoint, model: DocQA, clock: Clock
) -> None:
    with Session.open(endpoint, open_body={"document": "d"}, clock=clock) as s:
        assert s.expires_in == 600.0
        clock.now += 594
        s.invoke(b"in time")
        clock.now += 1  # 5 s before the server's expiry: inside the default margin
        sent = sum(invocations(local))
        with pytest.raises(SessionExpiredError):
            s.invoke(b"too late")
        assert sum(invocations(local)) == sent
        assert s.state is SessionState.EXPIRED
        clock.now += 5
        assert local.sessions("docs") == []  # the server dropped it on its own
    assert model.closed == [{"document": "d", "turns": ["in time"]}]  # released once, by expiry


def test_a_session_closed_elsewhere_is_rejected_by_the_server(
    local: LocalRuntime, endpoint: Endpoint, clock: Clock
) -> None:
    with Session.open(endpoint, open_body={"document": "d"}, clock=clock) as s:
        with Session.attach(endpoint, s.info, clock=clock):
            pass  # another owner closes it
        with pytest.raises(SessionClosedError) as info:
            s.invoke(b"q")
        assert not isinstance(info.value, SessionExpiredError)
        assert info.value.server_error is not None
        assert info.value.server_error.http_status == 400
        assert s.state is SessionState.REJECTED
    assert s.state is SessionState.CLOSED  # the close was sent; the server no longer knew it


def test_a_server_clock_ahead_of_ours_rejects_early(
    model: DocQA, clock: Clock, local: LocalRuntime
) -> None:
    server_clock = Clock()
    server_clock.now = clock.now + 100  # the container's clock runs 100 s ahead
    spec = EndpointSpec("skewed", handler=model, session_ttl=60, clock=server_clock)
    with LocalRuntime([spec]) as runtime:
        with Session.open(runtime.endpoint(), open_body={"document": "d"}, clock=clock) as s:
            assert s.expires_in == 160.0  # in our clock's terms
            clock.now += 70
            server_clock.now += 70
            with pytest.raises(SessionClosedError, match="expired by the container's clock"):
                s.invoke(b"q")
        assert s.state is SessionState.CLOSED


def test_calls_from_many_threads_are_serialized(
    endpoint: Endpoint, model: DocQA, clock: Clock
) -> None:
    answers: list[int] = []
    errors: list[BaseException] = []
    with Session.open(endpoint, open_body={"document": "d"}, clock=clock) as s:

        def worker() -> None:
            try:
                for _ in range(4):
                    turn = s.invoke(b"q").json()["turn"]
                    with model.lock:
                        answers.append(turn)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10.0)
        assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert sorted(answers) == list(range(1, 33))
    assert model.max_active == 1


def test_close_waits_for_a_call_in_flight_and_busy_calls_fail_clearly(
    endpoint: Endpoint, model: DocQA, clock: Clock
) -> None:
    s = Session.open(endpoint, open_body={"document": "d"}, clock=clock)
    slow = threading.Thread(target=s.invoke, args=(b"slow",))
    slow.start()
    assert model.entered.wait(5.0)
    s.lock_timeout = 0.05
    with pytest.raises(SessionError, match="busy"):
        s.invoke(b"q")
    s.lock_timeout = 5.0
    s._lock = WatchedLock(s._lock)  # same lock, still held by the slow call
    closer = threading.Thread(target=s.close)
    closer.start()
    assert s._lock.waiting.wait(5.0)  # the closer asked for the lock...
    assert closer.is_alive()  # ...and waits: the slow call holds it until released
    assert "closed" not in model.events
    model.release.set()
    slow.join(5.0)
    closer.join(5.0)
    assert not slow.is_alive()
    assert not closer.is_alive()
    assert model.events == ["answered slow", "closed"]
    assert s.state is SessionState.CLOSED


def test_stream_within_a_session(endpoint: Endpoint, clock: Clock) -> None:
    with Session.open(endpoint, open_body={"document": "one two three"}, clock=clock) as s:
        with s.stream(b"q") as stream:
            assert list(stream.lines()) == ["one", "two", "three"]
        assert s.invoke(b"q").json()["turn"] == 1


def test_a_session_resumed_in_another_process(
    local: LocalRuntime, endpoint: Endpoint, model: DocQA, clock: Clock
) -> None:
    s = Session.open(endpoint, open_body={"document": "shared"}, clock=clock)
    text = s.detach().to_json()
    child = textwrap.dedent(
        """
        import sys
        from smclient import ClientConfig, Endpoint
        from smclient._session import Session
        from smclient._session_info import SessionInfo

        endpoint = Endpoint("docs", region="us-east-1", endpoint_url=sys.argv[1],
                            config=ClientConfig(sign_requests=False))
        info = SessionInfo.from_json(sys.argv[2])
        with Session.attach(endpoint, info, clock=lambda: 1_800_000_000.0) as s:
            print(s.invoke(b"from the child").text())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", child, local.url, text],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"cached": "shared", "turn": 1}
    assert local.sessions("docs") == []
    assert model.closed == [{"document": "shared", "turns": ["from the child"]}]
    assert SessionInfo.from_json(text).id == s.id


@pytest.mark.parametrize(
    "protocol", [SessionProtocol.REQUEST_TYPE, SessionProtocol.DJL, SessionProtocol.TORCHSERVE]
)
def test_each_preset_closes_the_session_on_the_server(
    local: LocalRuntime, endpoint: Endpoint, model: DocQA, protocol: SessionProtocol
) -> None:
    with Session.open(endpoint, protocol=protocol, open_body={"document": "d"}) as s:
        assert s.invoke(b"q").json() == {"cached": "d", "turn": 1}
    assert s.state is SessionState.CLOSED
    assert local.sessions("docs") == []
    assert model.closed == [{"document": "d", "turns": ["q"]}]


def test_a_close_body_the_container_does_not_know_is_caught(
    local: LocalRuntime, endpoint: Endpoint, model: DocQA
) -> None:
    wrong = SessionProtocol("wrong", open=b"unused", close=b"goodbye")
    s = Session.open(endpoint, protocol=wrong, open_body=b'{"document": "d"}')
    with pytest.raises(SessionHeaderError, match="ClosedSessionId") as info:
        s.close()  # the container took "goodbye" for a question and answered it
    assert info.value.header is None
    assert s.state is SessionState.OPEN
    assert [i.session_id for i in local.sessions("docs")] == [s.id]
    assert model.opened[0]["turns"] == ["goodbye"]
    with Session.attach(endpoint, s.detach()):  # closes it with the right convention
        pass
    assert local.sessions("docs") == []
