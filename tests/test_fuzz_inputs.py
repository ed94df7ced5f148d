"""Fuzzed bad input: names, headers, bodies, open bodies, retry policies and argument types.

For every case, either the call is refused with an :class:`smclient.SMClientError` (in
practice :class:`InvalidInputError` / :class:`ConfigurationError`) and **nothing is sent**,
or it is sent and what reached the wire satisfies the service's rules (protocol.md §1),
checked by an oracle written here independently of smclient's checks. No other exception
type may escape. Requests are counted twice: at a loopback server this module starts, and
by a botocore ``before-send`` hook (which would also see a request aimed elsewhere).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smclient import (
    JSON,
    ClientConfig,
    Endpoint,
    InvalidInputError,
    RetryPolicy,
    Session,
    SMClientError,
)
from smclient.testing import Reply, ScriptedRuntime

# 100 examples per test in CI (about 25 s for the file); SMCLIENT_FUZZ_EXAMPLES=2000 digs deeper.
EXAMPLES = int(os.environ.get("SMCLIENT_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- the service's rules (protocol.md §1), written independently of smclient._validation ----

NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
PRINTABLE = re.compile(r"[\x20-\x7e]+")
RULES: dict[str, tuple[str, Any]] = {
    # keyword: (wire header, predicate on the value)
    "content_type": ("content-type", lambda v: bool(PRINTABLE.fullmatch(v)) and len(v) <= 1024),
    "accept": ("accept", lambda v: bool(PRINTABLE.fullmatch(v)) and len(v) <= 1024),
    "target_model": (
        "x-amzn-sagemaker-target-model",
        lambda v: bool(PRINTABLE.fullmatch(v)) and not v[0].isspace() and len(v) <= 1024,
    ),
    "target_variant": (
        "x-amzn-sagemaker-target-variant",
        lambda v: bool(NAME.fullmatch(v)) and len(v) <= 63,
    ),
    "target_container_hostname": (
        "x-amzn-sagemaker-target-container-hostname",
        lambda v: bool(NAME.fullmatch(v)) and len(v) <= 63,
    ),
    "inference_component": (
        "x-amzn-sagemaker-inference-component",
        lambda v: (
            bool(re.fullmatch(r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?", v)) and len(v) <= 63
        ),
    ),
    "inference_id": (
        "x-amzn-sagemaker-inference-id",
        lambda v: bool(PRINTABLE.fullmatch(v)) and not v[0].isspace() and len(v) <= 64,
    ),
    "custom_attributes": (
        "x-amzn-sagemaker-custom-attributes",
        lambda v: bool(PRINTABLE.fullmatch(v)) and len(v) <= 1024,
    ),
    "enable_explanations": (
        "x-amzn-sagemaker-enable-explanations",
        lambda v: bool(PRINTABLE.fullmatch(v)) and len(v) <= 64,
    ),
}


EVENT_STREAM = Reply.ok(b"", content_type="application/vnd.amazon.eventstream")
NEW_SESSION = Reply.ok(
    headers={"X-Amzn-SageMaker-New-Session-Id": "s1; Expires=2999-01-01T00:00:00Z"}
)


class Wire:
    """A loopback server, one endpoint on it sending through ``transport``, and the requests
    sent: counted at the server and, on the boto3 transport, by a botocore ``before-send``
    hook too (smclient's fast transport does not go through botocore's events).
    :meth:`reset` before each example."""

    def __init__(self, server: ScriptedRuntime, transport: str) -> None:
        self.server = server
        config = ClientConfig(sign_requests=False, transport=transport)  # type: ignore[arg-type]
        self.endpoint = server.endpoint("fuzz", retry=RetryPolicy.never(), config=config)
        self.hooked: int | None = None
        if transport == "boto3":
            self.hooked = 0
            self.endpoint.client().meta.events.register("before-send", self._count)

    def _count(self, **_: Any) -> None:
        assert self.hooked is not None
        self.hooked += 1

    def reset(self) -> Wire:
        if self.hooked is not None:
            self.hooked = 0
        self.server.requests.clear()
        return self

    def count(self) -> int:
        sent = len(self.server.requests)
        assert self.hooked is None or self.hooked == sent
        return sent


TRANSPORTS = pytest.fixture(scope="module", params=["fast", "boto3"])


def _wire(default: Reply | None, transport: str) -> Iterator[Wire]:
    with ScriptedRuntime(default=default) as server:
        yield Wire(server, transport)


@TRANSPORTS
def wire(request: pytest.FixtureRequest) -> Iterator[Wire]:
    yield from _wire(None, request.param)  # echoes the body


@TRANSPORTS
def stream_wire(request: pytest.FixtureRequest) -> Iterator[Wire]:
    yield from _wire(EVENT_STREAM, request.param)  # an empty, finished stream


@TRANSPORTS
def both_wires(request: pytest.FixtureRequest) -> Iterator[tuple[Wire, Wire]]:
    """An echoing and a streaming server, on the same transport."""
    for plain in _wire(None, request.param):
        for streaming in _wire(EVENT_STREAM, request.param):
            yield plain, streaming


@TRANSPORTS
def session_wire(request: pytest.FixtureRequest) -> Iterator[Wire]:
    yield from _wire(NEW_SESSION, request.param)  # opens session s1


def _run(call: Any) -> tuple[Any, SMClientError | None]:
    """``call()``'s result, or the SMClientError it raised; any other exception fails."""
    try:
        return call(), None
    except SMClientError as err:
        return None, err
    except Exception as exc:  # pragma: no cover - this is the failure being hunted
        pytest.fail(f"{type(exc).__name__} escaped: {exc!r}")


def _refused_or_sent(call: Any, sent: Wire) -> Any:
    """Run ``call``: an SMClientError means nothing was sent; any other exception fails."""
    result, err = _run(call)
    if err is not None:
        assert sent.count() == 0, f"{type(err).__name__} raised after sending: {err}"
        assert str(err)
        return err
    assert sent.count() == 1
    return result


# -- strategies ------------------------------------------------------------------------------

texts = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80),
    st.text(alphabet="abcAB01-_. \t\r\n", min_size=0, max_size=300),
    st.sampled_from(["NEW_SESSION", "", " x", "x ", "a--b", "-a", "a-", "\ud800", "é", "a\x00b"]),
)
anything = st.one_of(
    texts,
    st.none(),
    st.binary(max_size=20),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities included: refused unless allow_nan
    st.text(max_size=10),
    st.sampled_from(["\ud800", "\udfff"]),
)
json_like = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        | st.tuples(inner, inner)
        | st.frozensets(st.integers(), max_size=2)
    ),
    max_leaves=15,
)


def _closed_file() -> io.BytesIO:
    f = io.BytesIO(b"data")
    f.close()
    return f


class _ReadOnly:
    def read(self, size: int = -1) -> bytes:
        return b"data"


class _Opaque:
    pass


def _deep(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


special_bodies = st.sampled_from(
    [
        "closed-file",
        "read-only",
        "text-file",
        "object",
        "deep",
        "nan",
        "inf",
        "set",
        "circular",
        "too-big",
        "limit",
        "surrogate-str",
        "bytearray",
        "memoryview",
    ]
)


def _special(kind: str) -> Any:
    circular: list[Any] = []
    circular.append(circular)
    return {
        "closed-file": _closed_file,
        "read-only": _ReadOnly,
        "text-file": lambda: io.StringIO("text"),
        "object": _Opaque,
        "deep": lambda: _deep(100_000),
        "nan": lambda: {"x": math.nan},
        "inf": lambda: [math.inf],
        "set": lambda: {1, 2},
        "circular": lambda: circular,
        "too-big": lambda: b"x" * 6_291_457,
        "limit": lambda: io.BytesIO(b"x" * 6_291_456),
        "surrogate-str": lambda: "bad \ud800",
        "bytearray": lambda: bytearray(b"ok"),
        "memoryview": lambda: memoryview(b"ok"),
    }[kind]()


# -- names ------------------------------------------------------------------------------------


@FUZZ
@given(name=anything)
def test_endpoint_names(name: Any) -> None:
    ep, err = _run(lambda: Endpoint(name, region="us-east-1"))
    if err is not None:
        assert isinstance(err, InvalidInputError)
        assert err.field == "endpoint_name"
        return
    assert isinstance(name, str)
    assert NAME.fullmatch(name)
    assert len(name) <= 63
    assert ep.name == name


@FUZZ
@given(target_model=anything)
def test_model_handles(wire: Wire, target_model: Any) -> None:
    ep, sent = wire.endpoint, wire.reset()
    handle, err = _run(lambda: ep.model(target_model))
    if err is not None:
        assert isinstance(err, InvalidInputError)
        assert err.field == "target_model"
        assert sent.count() == 0
        return
    assert RULES["target_model"][1](handle.target_model)


# -- headers ----------------------------------------------------------------------------------


@FUZZ
@given(keyword=st.sampled_from(sorted(RULES)), value=anything, streamed=st.booleans())
def test_headers(both_wires: tuple[Wire, Wire], keyword: str, value: Any, streamed: bool) -> None:
    wire, stream_wire = both_wires
    if keyword in ("target_model", "enable_explanations"):
        streamed = False  # not stream parameters
    sent = (stream_wire if streamed else wire).reset()
    server, ep = sent.server, sent.endpoint
    call = ep.stream if streamed else ep.invoke
    outcome = _refused_or_sent(lambda: call(b"x", **{keyword: value}), sent)
    if isinstance(outcome, SMClientError):
        assert isinstance(outcome, InvalidInputError)
        assert outcome.field == keyword
        return
    if streamed:
        outcome.close()
    header, ok = RULES[keyword]
    if value is None:
        return
    assert isinstance(value, str)
    if streamed and keyword == "accept":
        header = "x-amzn-sagemaker-accept"
    assert server.requests[0].headers[header] == value
    assert ok(value), f"{keyword}={value!r} was sent but breaks the service's rules"


@FUZZ
@given(session_id=anything)
def test_stream_session_ids(stream_wire: Wire, session_id: Any) -> None:
    sent = stream_wire.reset()
    server, ep = sent.server, sent.endpoint
    outcome = _refused_or_sent(lambda: ep.stream(b"x", session_id=session_id), sent)
    if isinstance(outcome, SMClientError):
        assert isinstance(outcome, InvalidInputError)
        assert outcome.field == "session_id"
        return
    outcome.close()
    if session_id is not None:
        assert session_id != "NEW_SESSION"
        assert NAME.fullmatch(session_id)
        assert len(session_id) <= 256
        assert server.requests[0].headers["x-amzn-sagemaker-session-id"] == session_id


# -- bodies -----------------------------------------------------------------------------------


@FUZZ
@given(body=st.one_of(json_like, st.binary(max_size=50), special_bodies.map(_special)))
def test_bodies(wire: Wire, body: Any) -> None:
    sent = wire.reset()
    server, ep = sent.server, sent.endpoint
    outcome = _refused_or_sent(lambda: ep.invoke(body), sent)
    if isinstance(outcome, SMClientError):
        assert isinstance(outcome, InvalidInputError)
        assert outcome.field == "body"
        return
    wire = server.requests[0].body
    assert len(wire) <= 6_291_456
    if isinstance(body, str) or hasattr(body, "read"):
        return
    if isinstance(body, bytes | bytearray | memoryview):
        assert wire == bytes(body)
        return
    # Data went out as JSON: valid, strict JSON (no NaN literals), meaning the same value.
    decoded = json.loads(wire, parse_constant=lambda c: pytest.fail(f"{c} sent"))
    assert decoded == json.loads(json.dumps(body))


@FUZZ
@given(open_body=st.one_of(json_like, st.binary(max_size=20), special_bodies.map(_special)))
def test_session_open_bodies(session_wire: Wire, open_body: Any) -> None:
    sent = session_wire.reset()
    session, err = _run(lambda: Session.open(sent.endpoint, open_body=open_body))
    if err is not None:
        assert sent.count() == 0, f"{type(err).__name__} raised after sending: {err}"
        assert isinstance(err, InvalidInputError)
        assert err.field == "open_body"
        return
    session.detach()
    assert sent.count() == 1


# -- retry policies and argument types -----------------------------------------------------------

policy_fields = st.sampled_from(
    [
        "timeout",
        "max_attempts",
        "max_transient_attempts",
        "max_out_of_memory_attempts",
        "backoff_initial",
        "backoff_max",
        "backoff_multiplier",
        "retry_on",
        "sleep",
        "clock",
        "random",
        "on_retry",
    ]
)


@FUZZ
@given(field=policy_fields, value=anything)
def test_retry_policy_values(field: str, value: Any) -> None:
    policy, err = _run(lambda: RetryPolicy(**{field: value}))
    if err is not None:
        assert isinstance(err, InvalidInputError)
        # backoff_max below the default backoff_initial is refused as their relation
        assert err.field == field or (field, err.field) == ("backoff_max", "backoff_initial")
        return
    for name in ("timeout", "backoff_initial", "backoff_max", "backoff_multiplier"):
        number = getattr(policy, name)
        assert isinstance(number, int | float)
        assert math.isfinite(number)
        assert number >= 0
    assert policy.backoff_multiplier >= 1
    for attempt in (1, 2, 50):
        assert 0 <= policy.backoff(attempt) <= policy.backoff_max


wrong_types = st.one_of(
    anything.filter(lambda v: v is not None),
    st.builds(lambda: __import__("botocore.config").config.Config(read_timeout=5)),
    st.just(RetryPolicy),  # the class, not an instance
    st.just(JSON.encode),
)


@FUZZ
@given(argument=st.sampled_from(["retry", "codec"]), value=wrong_types, at_call=st.booleans())
def test_retry_and_codec_of_the_wrong_type(
    wire: Wire, argument: str, value: Any, at_call: bool
) -> None:
    server = wire.server
    if at_call:
        sent = wire.reset()
        ep = sent.endpoint
        outcome = _refused_or_sent(lambda: ep.invoke({"a": 1}, **{argument: value}), sent)
    else:
        _, outcome = _run(lambda: server.endpoint("fuzz", **{argument: value}))
    assert isinstance(outcome, InvalidInputError)
    assert outcome.field == argument


def test_the_named_cases_of_issue_14(wire: Wire) -> None:
    """The cases the issue lists, by name, so a regression names itself."""
    sent = wire.reset()
    ep = sent.endpoint
    cases: list[tuple[str, Any, str]] = [
        ("deep JSON", lambda: ep.invoke(_deep(100_000)), "body"),
        ("NaN", lambda: ep.invoke({"x": math.nan}), "body"),
        ("Infinity", lambda: ep.invoke([math.inf]), "body"),
        ("open_body not JSON", lambda: ep.session(open_body={"x": {1, 2}}), "open_body"),
        ("open_body NaN", lambda: ep.session(open_body={"x": math.nan}), "open_body"),
        ("closed file", lambda: ep.invoke(_closed_file()), "body"),
        ("read() only", lambda: ep.invoke(_ReadOnly()), "body"),
        ("stream NEW_SESSION", lambda: ep.stream(b"x", session_id="NEW_SESSION"), "session_id"),
        ("retry dict", lambda: ep.invoke(b"x", retry={"timeout": 5}), "retry"),
        ("codec str", lambda: ep.invoke({"a": 1}, codec="json"), "codec"),
        ("timeout nan", lambda: RetryPolicy(timeout=math.nan), "timeout"),
        ("timeout inf", lambda: RetryPolicy(timeout=math.inf), "timeout"),
        (
            "attempts nan",
            lambda: RetryPolicy(max_transient_attempts=math.nan),  # type: ignore[arg-type]
            "max_transient_attempts",
        ),
        ("multiplier -2", lambda: RetryPolicy(backoff_multiplier=-2), "backoff_multiplier"),
    ]
    for label, call, field in cases:
        with pytest.raises(InvalidInputError) as info:
            call()
        assert info.value.field == field, label
    assert sent.count() == 0


urls = st.one_of(
    anything,
    st.builds(
        lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
        st.sampled_from(["http", "https", "ftp", "", "HTTP"]),
        st.sampled_from(["127.0.0.1", "localhost", "[::1]", "", "a b", "ex.com", "é.com"]),
        st.sampled_from(["", ":0", ":8080", ":99999", ":x"]),
        st.sampled_from(["", "/", "/p", "/p q", "?a=1"]),
    ),
)


@FUZZ
@given(
    field=st.sampled_from(["region", "endpoint_url", "aws_endpoint_url", "boto3_session"]),
    value=urls,
)
def test_client_options(field: str, value: Any) -> None:
    ep, err = _run(lambda: Endpoint("fuzz", **{field: value}))
    if err is not None:
        assert isinstance(err, InvalidInputError)
        assert err.field == field
        return
    if field == "boto3_session":
        assert value is None
        return
    if value is None:
        return  # boto3's own default (a region from the environment, AWS's URL)
    # Accepted: boto3 must build the client with it (nothing is sent by building one).
    service = "s3" if field == "aws_endpoint_url" else "sagemaker-runtime"
    kwargs = {} if field == "region" else {"region": "us-east-1"}
    ep = Endpoint("fuzz", **kwargs, **{field: value})
    _, err = _run(lambda: ep.client(service))
    assert err is None, f"{field}={value!r} accepted, then boto3 refused it: {err}"


# -- documents users hand back: session infos, session headers, async handles -------------------

json_fields = st.one_of(
    texts, st.none(), st.integers(), st.floats(), st.booleans(), st.lists(st.integers(), max_size=2)
)
documents = st.one_of(
    anything,
    st.builds(json.dumps, json_like.filter(lambda v: _encodable(v))),
    st.builds(json.dumps, st.fixed_dictionaries({"id": json_fields, "expires_at": json_fields})),
    st.builds(
        json.dumps,
        st.fixed_dictionaries(
            {
                "endpoint_name": json_fields,
                "inference_id": json_fields,
                "output_location": json_fields,
                "failure_location": json_fields,
                "input_location": json_fields,
                "submitted_at": json_fields,
                "deadline": json_fields,
            }
        ),
    ),
)


def _encodable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


@settings(FUZZ, max_examples=3 * EXAMPLES)  # cheap: no request, no client
@given(kind=st.sampled_from(["session_info", "session_header", "async_handle"]), doc=documents)
def test_documents_handed_back(kind: str, doc: Any) -> None:
    from smclient import AsyncInvocation, SessionInfo

    load = {
        "session_info": SessionInfo.from_json,
        "session_header": SessionInfo.parse,
        "async_handle": AsyncInvocation.from_json,
    }[kind]
    _, err = _run(lambda: load(doc))
    if err is not None:
        assert str(err)


@FUZZ
@given(value=wrong_types, field=st.sampled_from(["read_timeout", "connect_timeout", "config"]))
def test_client_config_of_the_wrong_type_or_value(value: Any, field: str) -> None:
    from smclient import ClientConfig, ConfigurationError

    if field == "config":
        _, err = _run(lambda: Endpoint("fuzz", region="us-east-1", config=value))
        assert isinstance(err, InvalidInputError | ConfigurationError)
        assert "config" in str(err)
        return
    config, err = _run(lambda: ClientConfig(**{field: value}))
    if err is None:  # a number that is a usable timeout
        seconds = getattr(config, field)
        assert isinstance(seconds, int | float)
        assert not isinstance(seconds, bool)
        assert math.isfinite(seconds)
        assert seconds > 0
    else:
        assert isinstance(err, InvalidInputError)
        assert err.field == field
