"""``smclient local check-container --bidirectional``: the bidirectional contract checks
against the fake WebSocket container (loopback, port 0)."""

from __future__ import annotations

import io
from typing import Any

import pytest

pytest.importorskip("wsproto", reason="the bidirectional checks need the 'duplex' extra")

from smclient.local._cli import run_cli
from smclient.local.bidi import check_bidi_container

from .bidi_fakes import FakeContainer, echo


def _verdicts(results: Any) -> dict[str, str]:
    return {r.name: r.result for r in results}


def test_a_good_container_passes_every_check() -> None:
    container = FakeContainer(echo)
    try:
        results = check_bidi_container(container.url, probe="hello")
        assert _verdicts(results) == {
            "ping": "PASS",
            "upgrade": "PASS",
            "upgrade time": "PASS",
            "pong": "PASS",
            "answer": "PASS",
            "close": "PASS",
        }
        assert container.closes == [1000]
        out = io.StringIO()
        assert run_cli(["check-container", "--bidirectional", container.url], out=out) == 0
        assert "answer        SKIP    no --bidi-probe message given" in out.getvalue()
    finally:
        container.stop()


def test_a_refused_upgrade_fails_and_says_what_sagemaker_would_answer() -> None:
    container = FakeContainer(echo, refuse=404)
    try:
        results = check_bidi_container(container.url, path="v1/stream")
        assert results is not None
        upgrade = next(r for r in results if r.name == "upgrade")
        assert upgrade.result == "FAIL"
        assert "/v1/stream answered 404" in upgrade.detail
        assert "424 ModelError" in upgrade.detail
        assert container.targets == ["/v1/stream"]
    finally:
        container.stop()


def test_a_container_that_never_pongs_fails_the_pong_check() -> None:
    container = FakeContainer(echo, pong=False)
    try:
        results = check_bidi_container(container.url, timeout=0.2)
        assert _verdicts(results)["pong"] == "FAIL"
    finally:
        container.stop()


def test_no_container_at_all_exits_2() -> None:
    container = FakeContainer(echo)
    url = container.url
    container.stop()
    out = io.StringIO()
    assert run_cli(["check-container", "--bidirectional", "--timeout", "2", url], out=out) == 2
    assert "does not answer" in out.getvalue()
