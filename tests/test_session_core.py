"""The session state machine on its own (no I/O), driven by hypothesis through random
sequences of calls, closes, rejections, detaches and clock moves."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from smclient import ValidationError
from smclient._session_core import SessionCore
from smclient._session_info import (
    SessionClosedError,
    SessionExpiredError,
    SessionHeaderError,
    SessionInfo,
    SessionState,
)

EXPIRES = datetime(2030, 1, 1, tzinfo=timezone.utc)
MARGIN = 5.0
TERMINAL = {SessionState.CLOSED, SessionState.EXPIRED, SessionState.DETACHED}
LIVE = {SessionState.OPEN, SessionState.REJECTED}  # a close is owed


def rejection() -> ValidationError:
    return ValidationError("gone", error_code="ValidationError", http_status=400)


class SessionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = EXPIRES.timestamp() - 600
        self.core = SessionCore("e", MARGIN, lambda: self.now)
        self.core.opened(f"s1; Expires={EXPIRES:%Y-%m-%dT%H:%M:%S}Z")
        self.ended = False  # reached a terminal state once
        self.was_rejected = False  # reached REJECTED once

    def expired(self) -> bool:
        return self.now >= EXPIRES.timestamp() - MARGIN

    @rule(seconds=st.floats(0, 400))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def call(self) -> None:
        usable = self.core.state is SessionState.OPEN and not self.expired()
        if usable:
            self.core.check_usable()
            return
        with pytest.raises(SessionClosedError) as info:
            self.core.check_usable()
        assert isinstance(info.value, SessionExpiredError) == (
            self.core.state is SessionState.EXPIRED
        )

    @precondition(lambda self: self.core.state is SessionState.OPEN and not self.expired())
    @rule(late=st.booleans())
    def endpoint_rejects(self, late: bool) -> None:
        if late:  # the call outlasted the expiry
            self.now = EXPIRES.timestamp()
        error = self.core.rejected(rejection())
        assert isinstance(error, SessionExpiredError) == late
        assert error.server_error is not None
        expected = SessionState.EXPIRED if late else SessionState.REJECTED
        assert error.state is self.core.state is expected

    @rule(outcome=st.sampled_from(["ok", "fails", "wrong id", "rejected"]))
    def close(self, outcome: str) -> None:
        before = self.core.state
        if not self.core.begin_close():
            assert self.core.visible_state() in TERMINAL
            return
        assert before in LIVE
        assert self.core.state is SessionState.CLOSING
        if outcome == "ok":
            self.core.closed("s1")
            assert self.core.state is SessionState.CLOSED
        elif outcome == "fails":
            self.core.close_failed()
            assert self.core.state is before
        elif outcome == "wrong id":
            with pytest.raises(SessionHeaderError):
                self.core.closed("s2")
            assert self.core.state is before
        else:
            self.core.close_rejected(rejection())
            assert self.core.state in {SessionState.CLOSED, SessionState.EXPIRED}

    @rule()
    def detach(self) -> None:
        was_live = self.core.state in LIVE
        assert self.core.detach() == SessionInfo("s1", EXPIRES)
        if was_live:
            assert self.core.state is SessionState.DETACHED

    @invariant()
    def terminal_states_are_final(self) -> None:
        if self.core.state in TERMINAL:
            self.ended = True
        assert not self.ended or self.core.state in TERMINAL

    @invariant()
    def a_rejected_session_never_sends_calls_again(self) -> None:
        if self.core.state is SessionState.REJECTED:
            self.was_rejected = True
        assert not self.was_rejected or self.core.state is not SessionState.OPEN

    @invariant()
    def visible_state_reflects_expiry(self) -> None:
        if self.core.state in LIVE:
            expected = SessionState.EXPIRED if self.expired() else self.core.state
            assert self.core.visible_state() is expected

    @invariant()
    def leaks_only_when_open_and_never_closed(self) -> None:
        if self.core.leaked():
            assert self.core.state in LIVE
            assert not self.core.close_attempted
            assert not self.expired()


TestSessionMachine = SessionMachine.TestCase
