"""Shared fixtures. Wire-level tests run against loopback servers the tests start."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest

from smclient.testing import ScriptedRuntime


@attrs.define
class FakeClock:
    """Monotonic seconds that move only when the code under test sleeps (or a test says so)."""

    now: float = 1000.0
    sleeps: list[float] = attrs.Factory(list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def runtime() -> Iterator[ScriptedRuntime]:
    """A scripted loopback runtime server (stands in for SageMaker where moto cannot)."""
    with ScriptedRuntime() as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region so nothing reaches a real account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(params=["auto", "boto3"])
def each_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once per runtime transport: ``auto`` (smclient's fast transport on loopback
    servers, the boto3 client under moto) and ``boto3`` (always the boto3 client)."""
    monkeypatch.setenv("SMCLIENT_TRANSPORT", request.param)
    return str(request.param)
