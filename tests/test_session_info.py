"""SessionInfo, the NewSessionId parser (property-tested), body presets, session errors."""

from __future__ import annotations

import json
import pickle
import string
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from smclient import InvalidInputError, SMClientError, ValidationError
from smclient._session_info import (
    MAX_HEADER_LENGTH,
    SessionClosedError,
    SessionError,
    SessionExpiredError,
    SessionHeaderError,
    SessionInfo,
    SessionProtocol,
    SessionState,
)

ALNUM = string.ascii_letters + string.digits
session_ids = st.builds(
    lambda first, rest: first + "".join(rest),
    st.sampled_from(ALNUM),
    st.lists(
        st.builds(lambda h, c: "-" * h + c, st.integers(0, 3), st.sampled_from(ALNUM)),
        max_size=60,
    ),
).filter(lambda s: len(s) <= 256)
whole_seconds = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)
).map(lambda d: d.replace(microsecond=0, tzinfo=timezone.utc))


def stamp(when: datetime) -> str:
    """YYYY-MM-DDTHH:MM:SSZ (strftime's %Y does not pad years below 1000)."""
    return f"{when.year:04d}-{when:%m-%dT%H:%M:%S}Z"


@given(session_ids, whole_seconds)
@example("a", datetime(1, 1, 1, tzinfo=timezone.utc))
@example("x" * 256, datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc))
def test_header_round_trips(session_id: str, expires: datetime) -> None:
    info = SessionInfo(session_id, expires)
    assert SessionInfo.parse(info.header) == info
    parsed = SessionInfo.parse(f"{session_id}; Expires={stamp(expires)}")
    assert parsed.expires_at is not None
    assert parsed.expires_at.tzinfo is timezone.utc
    assert parsed.id == session_id


@given(session_ids, st.one_of(whole_seconds, st.none()))
def test_json_round_trips(session_id: str, expires: datetime | None) -> None:
    info = SessionInfo(session_id, expires)
    text = info.to_json()
    assert SessionInfo.from_json(text) == info
    assert SessionInfo.from_json(text.encode()) == info
    assert json.loads(text)["id"] == session_id


@given(st.text(max_size=600))
@example("abc; Expires=2026-13-01T00:00:00Z")  # no such month
@example("abc; Expires=2026-02-30T00:00:00Z")  # no such day
@example("abc; Expires=0000-01-01T00:00:00Z")  # no year 0
@example("abc; Expires=2026-01-01T00:00:00")  # no Z
@example("abc; Expires=2026-01-01T00:00:00.123Z")  # fractions
@example("abc; Expires=2026-01-01T00:00:00+00:00")
@example("abc; expires=2026-01-01T00:00:00Z")  # case
@example("abc Expires=2026-01-01T00:00:00Z")  # no ;
@example("abc;Expires=2026-01-01T00:00:00Z\n")
@example("NEW_SESSION; Expires=2026-01-01T00:00:00Z")
@example("-abc; Expires=2026-01-01T00:00:00Z")
@example("abc-; Expires=2026-01-01T00:00:00Z")
@example("ab\u0661c; Expires=2026-01-01T00:00:00Z")  # a non-ASCII digit in the id
@example("abc; Expires=\u0662026-01-01T00:00:00Z")  # ... and in the date
@example("abc")
@example("")
def test_any_text_parses_or_raises_the_typed_error(text: str) -> None:
    try:
        info = SessionInfo.parse(text)
    except SessionHeaderError as exc:
        error: SessionHeaderError | None = exc
    else:
        error = None
    if error is not None:
        assert isinstance(error, ValueError)
        assert isinstance(error, SMClientError)
        assert error.header == text[:80]
    else:  # only well-formed values parse: the id starts the text, the expiry ends it
        assert text.strip(" \t").startswith(info.id)
        assert text.strip(" \t").endswith(info.header.partition("Expires=")[2])
        assert SessionInfo.parse(info.header) == info


@given(session_ids, whole_seconds, st.text(alphabet="_!./:@\u00e9\u0661", min_size=1, max_size=3))
def test_wrongly_patterned_ids_are_rejected(session_id: str, expires: datetime, bad: str) -> None:
    good = SessionInfo(session_id, expires).header
    with pytest.raises(SessionHeaderError):
        SessionInfo.parse(bad + good)
    with pytest.raises(SessionHeaderError):
        SessionInfo.parse(good.replace(";", bad + ";", 1))


@given(st.integers(257, 400), whole_seconds)
def test_over_long_ids_are_rejected(length: int, expires: datetime) -> None:
    with pytest.raises(SessionHeaderError, match="longer than 256"):
        SessionInfo.parse(f"{'a' * length}; Expires={stamp(expires)}")


@given(st.integers(MAX_HEADER_LENGTH + 1, 5000))
def test_over_long_values_are_rejected_before_matching(length: int) -> None:
    with pytest.raises(SessionHeaderError, match="longer than 512"):
        SessionInfo.parse("a" * length)


@pytest.mark.parametrize("value", [None, b"abc; Expires=2026-01-01T00:00:00Z", 42])
def test_non_strings_are_a_typed_error(value: object) -> None:
    with pytest.raises(SessionHeaderError, match="expected a string"):
        SessionInfo.parse(value)  # type: ignore[arg-type]


def test_whitespace_around_the_separator_is_tolerated() -> None:
    info = SessionInfo.parse("  abc-1 ;Expires=2026-11-22T04:30:00Z\t")
    assert info == SessionInfo("abc-1", datetime(2026, 11, 22, 4, 30, tzinfo=timezone.utc))


def test_expiry_is_normalised_to_utc_and_must_be_aware() -> None:
    cet = timezone(timedelta(hours=1))
    info = SessionInfo("s", datetime(2026, 1, 1, 1, 0, tzinfo=cet))
    assert info.expires_at == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert info.expires_at is not None
    assert info.expires_at.tzinfo is timezone.utc
    with pytest.raises(InvalidInputError, match="naive"):
        SessionInfo("s", datetime(2026, 1, 1))
    with pytest.raises(InvalidInputError, match="expected a datetime"):
        SessionInfo("s", "2026-01-01")  # type: ignore[arg-type]
    assert SessionInfo("s").header == "s"


@pytest.mark.parametrize("bad", ["NEW_SESSION", "", "a b", "x" * 257, "-a"])
def test_session_ids_are_checked(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        SessionInfo(bad)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"id": "a"}',
        '{"id": "a", "expires_at": null, "x": 1}',
        '{"id": "a", "expires_at": "2026-01-01T00:00:00"}',
        '{"id": "a", "expires_at": "yesterdayZ"}',
        '{"id": "a", "expires_at": 5}',
        '{"id": "bad id", "expires_at": null}',
    ],
)
def test_from_json_rejects_other_documents(text: str) -> None:
    with pytest.raises(InvalidInputError):
        SessionInfo.from_json(text)


def test_sub_second_expiry_survives_json() -> None:
    info = SessionInfo("s", datetime(2026, 1, 1, 0, 0, 0, 250_000, tzinfo=timezone.utc))
    assert SessionInfo.from_json(info.to_json()) == info
    assert info.header == "s; Expires=2026-01-01T00:00:00Z"


# -- protocols ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "opened", "closed"),
    [
        (
            SessionProtocol.REQUEST_TYPE,
            {"requestType": "NEW_SESSION"},
            {"requestType": "CLOSE"},
        ),
        (SessionProtocol.DJL, {"requestType": "NEW_SESSION"}, {"requestType": "CLOSE_SESSION"}),
        (
            SessionProtocol.TORCHSERVE,
            {"type": "start_session"},
            {"type": "close_session", "session_id": "abc"},
        ),
    ],
)
def test_presets(protocol: SessionProtocol, opened: dict[str, str], closed: dict[str, str]) -> None:
    assert json.loads(protocol.open_body()) == opened
    assert json.loads(protocol.close_body("abc")) == closed
    merged = json.loads(protocol.open_body({"image": "..."}))
    assert merged == {**opened, "image": "..."}
    assert protocol.open_body(b"raw context") == b"raw context"
    assert protocol.open_body("text context") == "text context"
    assert protocol.content_type == "application/json"


def test_preset_refuses_payloads_it_cannot_carry() -> None:
    with pytest.raises(InvalidInputError, match="open marker"):
        SessionProtocol.REQUEST_TYPE.open_body({"requestType": "CLOSE"})
    assert json.loads(SessionProtocol.REQUEST_TYPE.open_body({"requestType": "NEW_SESSION"})) == {
        "requestType": "NEW_SESSION"
    }
    with pytest.raises(InvalidInputError, match="cannot be a list"):
        SessionProtocol.REQUEST_TYPE.open_body([1, 2])


def test_custom_protocol_bodies_and_callables() -> None:
    fixed = SessionProtocol("mine", open=b"OPEN", close=b"CLOSE", content_type="text/plain")
    assert fixed.open_body() == b"OPEN"
    assert fixed.open_body(b"context") == b"context"  # the payload replaces a fixed body
    assert fixed.close_body("abc") == b"CLOSE"
    built = SessionProtocol(
        "built", open=lambda payload: f"OPEN {payload}", close=lambda sid: f"BYE {sid}"
    )
    assert built.open_body("x") == "OPEN x"
    assert built.close_body("abc") == "BYE abc"
    assert "OPEN" not in repr(fixed)  # bodies stay out of reprs


# -- errors ------------------------------------------------------------------------------


def test_error_tree() -> None:
    assert issubclass(SessionError, SMClientError)
    assert issubclass(SessionClosedError, SessionError)
    assert issubclass(SessionExpiredError, SessionClosedError)
    assert issubclass(SessionHeaderError, SessionError)
    assert issubclass(SessionHeaderError, ValueError)


def test_errors_pickle_with_their_context() -> None:
    server = ValidationError("gone", error_code="ValidationError", http_status=400, request_id="r")
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    errors: list[SessionError] = [
        SessionError("busy", session_id="s", endpoint="e"),
        SessionClosedError("closed", session_id="s", endpoint="e", server_error=server),
        SessionExpiredError("late", session_id="s", endpoint="e", expires_at=when),
        SessionHeaderError("bad", header="x" * 100, session_id="s", endpoint="e"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert copy.__dict__.keys() == error.__dict__.keys()
        assert copy.session_id == "s"
    closed = pickle.loads(pickle.dumps(errors[1]))
    assert isinstance(closed, SessionClosedError)
    assert closed.state is SessionState.CLOSED
    assert isinstance(closed.server_error, ValidationError)
    assert closed.server_error.request_id == "r"
    expired = pickle.loads(pickle.dumps(errors[2]))
    assert isinstance(expired, SessionExpiredError)
    assert (expired.expires_at, expired.state) == (when, SessionState.EXPIRED)
    header = pickle.loads(pickle.dumps(errors[3]))
    assert isinstance(header, SessionHeaderError)
    assert header.header == "x" * 80
