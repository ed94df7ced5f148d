"""run_check against a conforming fake container and against each way it can misbehave."""

from __future__ import annotations

import argparse
import io
import time
from typing import Any

import pytest

from smclient.local.containers._check import (
    CheckResult,
    add_arguments,
    check_container,
    format_table,
    run_check,
    run_from_args,
)

from .fake_container import FakeContainer

ALL_CHECKS = [
    "ping",
    "load",
    "describe",
    "load again",
    "describe unknown",
    "invoke",
    "session open",
    "session use",
    "session close",
    "session closed id",
    "invoke unknown",
    "list",
    "list pages of 2",
    "load until 507",
    "507 leaves no model",
    "unload frees memory",
    "unload",
    "unload then describe",
    "unload then invoke",
    "unload again",
    "cleanup",
]
OOM = ["load until 507", "507 leaves no model", "unload frees memory"]
SESSIONS = ["session open", "session use", "session close", "session closed id"]


def _run(fake: FakeContainer, **kwargs: Any) -> tuple[int, dict[str, CheckResult], str]:
    out = io.StringIO()
    kwargs.setdefault("timeout", 5.0)
    code = run_check(fake.url, out=out, **kwargs)
    text = out.getvalue()
    return code, _parse(text), text


def _parse(text: str) -> dict[str, CheckResult]:
    """The rows of the printed table (the RESULT column starts where its header does)."""
    lines = text.splitlines()
    at = lines[0].index("RESULT")
    rows = {}
    for line in lines[1:-1]:
        name, verdict, detail = line[:at].strip(), line[at : at + 6].strip(), line[at + 8 :]
        rows[name] = CheckResult(name, verdict, detail)  # type: ignore[arg-type]
    return rows


def _verdicts(rows: dict[str, CheckResult], verdict: str) -> set[str]:
    return {name for name, row in rows.items() if row.result == verdict}


def test_a_conforming_container_passes_every_check() -> None:
    with FakeContainer(memory_budget=6, sessions=True) as fake:
        code, rows, text = _run(fake, sessions=True)
        assert fake.models == {}  # the check unloaded everything it loaded
        assert fake.memory_used == 0
    assert code == 0
    assert list(rows) == ALL_CHECKS
    assert _verdicts(rows, "PASS") == set(ALL_CHECKS)
    # The reference's quirk is reported, not failed: 4 models in pages of 2 end empty.
    assert "last page is empty" in rows["list pages of 2"].detail
    assert "21 passed, 0 failed, 0 skipped" in text
    for name in ALL_CHECKS:
        assert f"\n{name} " in text


def test_the_checks_send_what_sagemaker_sends() -> None:
    with FakeContainer(memory_budget=6) as fake:
        _run(fake)
        loads = [r for r in fake.requests if (r.method, r.path) == ("POST", "/models")]
        invokes = [r for r in fake.requests if r.path.endswith("/invoke")]
    assert loads
    assert all(r.headers["content-type"] == "application/json" for r in loads)
    assert b'"url": "/opt/ml/models/smclient-check-1/model"' in loads[0].body
    assert invokes[0].headers["x-amzn-sagemaker-target-model"] == "smclient-check-1.tar.gz"


def test_without_a_507_the_memory_checks_are_skipped_not_failed() -> None:
    with FakeContainer() as fake:
        code, rows, text = _run(fake, oom_attempts=3)
    assert code == 0
    assert _verdicts(rows, "SKIP") == set(OOM + SESSIONS)
    assert "no 507 after 3 more loads" in rows["load until 507"].detail
    assert "7 skipped" in text


def test_oom_attempts_0_disables_the_memory_checks() -> None:
    with FakeContainer(memory_budget=6) as fake:
        code, rows, _ = _run(fake, oom_attempts=0)
        assert not any(
            r.path == "/models" and r.method == "POST" and b"-5" in r.body for r in fake.requests
        )
    assert code == 0
    assert _verdicts(rows, "SKIP") == set(OOM + SESSIONS)


def test_session_checks_not_asked_for_are_skipped_with_the_reason() -> None:
    with FakeContainer(memory_budget=6) as fake:
        code, rows, _ = _run(fake)
    assert code == 0
    for name in SESSIONS:
        assert rows[name].result == "SKIP"
        assert "not asked for (--sessions" in rows[name].detail


def test_the_session_checks_send_the_contracts_requests() -> None:
    with FakeContainer(memory_budget=6, sessions=True) as fake:
        _run(
            fake,
            sessions=True,
            session_open_body=b"OPEN",
            session_close_body=b'{"requestType": "CLOSE"}',
        )
        sent = [r for r in fake.requests if "x-amzn-sagemaker-session-id" in r.headers]
    assert len(sent) == 4  # open, use, close, use after close
    assert sent[0].headers["x-amzn-sagemaker-session-id"] == "NEW_SESSION"
    assert sent[0].body == b"OPEN"
    assert len({r.headers["x-amzn-sagemaker-session-id"] for r in sent[1:]}) == 1
    assert sent[2].body == b'{"requestType": "CLOSE"}'


@pytest.mark.parametrize(
    ("settings", "verdict"),
    [
        ({}, "no X-Amzn-SageMaker-Session-Id header"),
        ({"sessions": True, "session_header": "abc"}, "has no '; Expires=<UTC time>'"),
        ({"sessions": True, "session_header": "a b; Expires=x"}, "malformed header"),
        (
            {"sessions": True, "session_header": "abc; Expires=2001-01-01T00:00:00Z"},
            "already expired",
        ),
    ],
)
def test_a_container_failing_the_session_open(settings: dict[str, Any], verdict: str) -> None:
    with FakeContainer(memory_budget=6, **settings) as fake:
        code, rows, _ = _run(fake, sessions=True)
    assert code == 1
    assert rows["session open"].result == "FAIL"
    assert verdict in rows["session open"].detail
    for name in SESSIONS[1:]:
        assert rows[name].result == "SKIP"
        assert rows[name].detail == "no session was opened"


def test_the_cli_flag_asks_for_the_session_checks() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with FakeContainer(memory_budget=6, sessions=True) as fake:
        args = parser.parse_args([fake.url, "--sessions", "--timeout", "5"])
        out = io.StringIO()
        assert run_from_args(args, out=out) == 0
    assert "session closed id" in out.getvalue()
    assert "21 passed" in out.getvalue()


@pytest.mark.parametrize(
    ("settings", "failing"),
    [
        pytest.param({"json_body": False}, {"load"}, id="ignores-json-body"),
        pytest.param({"leak_on_unload": True}, {"unload frees memory"}, id="leaks-on-unload"),
        pytest.param(
            {"unload_keeps_model": True},
            {
                "unload then describe",
                "unload then invoke",
                "unload again",
                "cleanup",
                "unload frees memory",
            },
            id="unload-keeps-model",
        ),
        pytest.param({"pagination": "repeat_token"}, {"list", "list pages of 2"}, id="repeat"),
        pytest.param({"pagination": "endless"}, {"list", "list pages of 2"}, id="endless"),
        pytest.param({"stuck_on_507": True}, {"507 leaves no model"}, id="stuck-on-507"),
        pytest.param({"statuses": {"load_conflict": 200}}, {"load again"}, id="conflict-200"),
        pytest.param(
            {"statuses": {"describe_missing": 500}},
            {"describe unknown", "unload then describe", "507 leaves no model"},
            id="describe-missing-500",
        ),
        pytest.param(
            {"statuses": {"invoke_missing": 400}},
            {"invoke unknown", "unload then invoke"},
            id="invoke-missing-400",
        ),
        pytest.param(
            {"statuses": {"unload_missing": 200}}, {"unload again"}, id="unload-twice-200"
        ),
        pytest.param({"statuses": {"out_of_memory": 500}}, {"load until 507"}, id="oom-500"),
        pytest.param({"statuses": {"invoke": 400}}, {"invoke"}, id="model-rejects-body"),
        pytest.param({"statuses": {"ping": 500}}, {"ping"}, id="ping-500"),
        pytest.param(
            {"bodies": {"describe": b'{"modelName": "other", "modelUrl": "/x"}'}},
            {"describe"},
            id="describe-other-model",
        ),
        pytest.param({"bodies": {"describe": b"{}"}}, {"describe"}, id="describe-malformed"),
        pytest.param(
            {"bodies": {"list": b'{"items": []}'}}, {"list", "list pages of 2"}, id="list-malformed"
        ),
    ],
)
def test_each_misbehaviour_fails_its_check(settings: dict[str, Any], failing: set[str]) -> None:
    settings.setdefault("memory_budget", 6)
    with FakeContainer(**settings) as fake:
        code, rows, text = _run(fake)
    assert code == 1
    assert _verdicts(rows, "FAIL") == failing
    assert f"{len(failing)} failed" in text


def test_the_failure_details_explain_what_is_wrong() -> None:
    with FakeContainer(json_body=False) as fake:
        _, rows, _ = _run(fake)
    assert "Parameter url is required." in rows["load"].detail
    assert "Content-Type: application/json" in rows["load"].detail
    assert rows["describe"].result == "SKIP"
    with FakeContainer(memory_budget=6, stuck_on_507=True) as fake:
        _, rows, _ = _run(fake)
        assert fake.models == {}  # the stuck model was cleared too
    assert "HTTP 503" in rows["507 leaves no model"].detail
    with FakeContainer(memory_budget=6, statuses={"invoke": 400}) as fake:
        _, rows, _ = _run(fake)
    assert "invoke_body" in rows["invoke"].detail


def test_a_container_that_does_not_page_passes() -> None:
    with FakeContainer(memory_budget=6, pagination="none") as fake:
        code, rows, _ = _run(fake)
    assert code == 0
    assert rows["list pages of 2"].detail.startswith("4 model(s) in 1 page(s)")


def test_an_unreachable_container_exits_2() -> None:
    with FakeContainer() as fake:
        url = fake.url
    out = io.StringIO()
    assert run_check(url, out=out, timeout=1.0) == 2
    assert "does not answer" in out.getvalue()
    assert check_container(url, timeout=1.0) is None


def test_a_container_that_dies_mid_check_fails_without_hanging() -> None:
    with FakeContainer(memory_budget=6, die_after="invoke") as fake:
        start = time.monotonic()
        code, rows, _ = _run(fake, timeout=1.0)
        elapsed = time.monotonic() - start
    assert code == 1
    assert rows["connection"].result == "FAIL"
    assert "stopped answering" in rows["connection"].detail
    assert "unload" not in rows
    # as docs/container-check.md says: the last row, the only failure
    assert list(rows)[-1] == "connection"
    assert [name for name, row in rows.items() if row.result == "FAIL"] == ["connection"]
    assert elapsed < 5.0


def test_a_stalled_route_fails_its_check_and_the_rest_goes_on() -> None:
    with FakeContainer(memory_budget=6, stall={"list"}) as fake:
        code, rows, _ = _run(fake, timeout=0.2)
    assert code == 1
    assert _verdicts(rows, "FAIL") == {"list", "list pages of 2"}
    assert "no answer" in rows["list"].detail


def test_one_model_directory_can_serve_every_check_model() -> None:
    with FakeContainer(memory_budget=6, known_urls={"/opt/ml/model"}) as fake:
        code, _, _ = _run(fake, model_url="/opt/ml/model")
    assert code == 0


def test_a_model_url_the_container_cannot_find_fails_the_load() -> None:
    with FakeContainer(known_urls={"/opt/ml/model"}) as fake:
        code, rows, _ = _run(fake)
    assert code == 1
    assert rows["load"].detail.startswith("expected 200, got HTTP 404")
    assert "no model at /opt/ml/models/smclient-check-1/model: see model_url" in rows["load"].detail


def test_leftovers_of_an_interrupted_run_are_cleared_first() -> None:
    with FakeContainer(memory_budget=6) as fake:
        fake.add_model("smclient-check-1")
        fake.add_model("someone-elses-model")
        code, _, _ = _run(fake)
        assert fake.models == {"someone-elses-model": "/opt/ml/models/someone-elses-model/model"}
    assert code == 0


def test_the_prefix_names_the_models(tmp_path: Any) -> None:
    with FakeContainer(memory_budget=6) as fake:
        code, _, _ = _run(fake, model_prefix="mine")
        names = {r.path for r in fake.requests if r.method == "DELETE"}
    assert code == 0
    assert "/models/mine-1" in names


def test_format_table_aligns_columns_and_counts() -> None:
    text = format_table(
        [
            CheckResult("a", "PASS", "ok"),
            CheckResult("longer name", "FAIL", "bad"),
            CheckResult("c", "SKIP", "why"),
        ]
    )
    lines = text.splitlines()
    assert lines[0] == "CHECK        RESULT  DETAIL"
    assert lines[2] == "longer name  FAIL    bad"
    assert lines[-1] == "1 passed, 1 failed, 1 skipped"


def test_the_cli_arguments_reach_the_check() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with FakeContainer(memory_budget=6, known_urls={"/m"}) as fake:
        args = parser.parse_args(
            [fake.url, "--model-url", "/m", "--model-prefix", "cli", "--invoke-body", "[1]",
             "--content-type", "text/plain", "--oom-attempts", "0", "--timeout", "2"]
        )  # fmt: skip
        out = io.StringIO()
        assert run_from_args(args, out=out) == 0
        invoke = next(r for r in fake.requests if r.path == "/models/cli-1/invoke")
    assert (invoke.body, invoke.headers["content-type"]) == (b"[1]", "text/plain")
    assert "SKIP    disabled (oom_attempts=0)" in out.getvalue()


def test_the_cli_defaults_match_run_check() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["http://127.0.0.1:8080"])
    assert (args.timeout, args.model_url, args.oom_attempts) == (30.0, None, 16)
    assert (args.invoke_body, args.content_type) == ("{}", "application/json")
