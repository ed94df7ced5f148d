"""The error tree as drawn (``smclient/_errors.py``'s docstring and ``docs/errors.md``)
against the classes: every ``SMClientError`` subclass is drawn under its real parent, every
one pickles with its fields, and every one names its public module whichever name was
touched first."""

from __future__ import annotations

import importlib
import pickle
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import smclient
import smclient.local
from smclient import SMClientError
from smclient._errors import gave_up

ROOT = Path(__file__).resolve().parent.parent

# Every module that defines an SMClientError subclass. A new module with errors must be
# added here (the walk below only sees classes whose modules were imported).
ERROR_MODULES = (
    "smclient._errors",
    "smclient._session_info",
    "smclient._asyncinference._errors",
    "smclient._deploy",
    "smclient.local.containers._client",
)


def _public_errors() -> dict[str, type[SMClientError]]:
    for name in ERROR_MODULES:
        importlib.import_module(name)
    found: dict[str, type[SMClientError]] = {}
    todo: list[type[SMClientError]] = [SMClientError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if not cls.__module__.startswith("smclient") or cls.__name__.startswith("_"):
            continue  # a test's own subclass, or a private helper never raised to callers
        if "_gave_up_base" in cls.__dict__:
            continue  # the give-up variant of a drawn class (see RetriesExhaustedError)
        found[cls.__name__] = cls
    return found


_BRANCH = re.compile(r"^(?P<indent>(?:[│ ] {3})*)[├└]── (?P<name>[\w.]+)")


def _drawn_tree(text: str) -> dict[str, str]:
    """``{class name: parent name}`` from the box drawing rooted at ``SMClientError``
    (the first line that starts with it, up to the next blank line)."""
    lines = text.splitlines()
    root = next(i for i, line in enumerate(lines) if line.lstrip().startswith("SMClientError"))
    column = len(lines[root]) - len(lines[root].lstrip())
    parents: dict[str, str] = {}
    stack = ["SMClientError"]
    for line in lines[root + 1 :]:
        if not line.strip():
            break
        match = _BRANCH.match(line[column:])
        if match is None:
            continue  # a continuation line of a comment
        depth = len(match["indent"]) // 4
        name = match["name"].rsplit(".", 1)[-1]
        del stack[depth + 1 :]
        parents[name] = stack[depth]
        stack.append(name)
    return parents


def _drawings() -> dict[str, str]:
    import smclient._errors

    doc = smclient._errors.__doc__ or ""
    md = (ROOT / "docs" / "errors.md").read_text()
    return {"smclient/_errors.py": doc, "docs/errors.md": md}


@pytest.mark.parametrize("where", ["smclient/_errors.py", "docs/errors.md"])
def test_the_drawn_tree_is_the_class_tree(where: str) -> None:
    drawn = _drawn_tree(_drawings()[where])
    actual = {
        name: next(b.__name__ for b in cls.__bases__ if issubclass(b, SMClientError))
        for name, cls in _public_errors().items()
        if cls is not SMClientError
    }
    assert set(drawn) - set(actual) == set(), f"{where} draws classes that do not exist"
    assert set(actual) - set(drawn) == set(), f"{where} leaves these classes out"
    assert drawn == actual


def test_the_drawing_parser_sees_nesting() -> None:
    tree = _drawn_tree("SMClientError\n├── A\n│   └── B\n│       └── C\n└── D\n")
    assert tree == {"A": "SMClientError", "B": "A", "C": "B", "D": "SMClientError"}


def test_every_public_error_is_exported() -> None:
    for name, cls in _public_errors().items():
        module = sys.modules[cls.__module__]
        assert getattr(module, name) is cls, name
        assert name in module.__all__, name


# One instance of every public error class, with every field set. A new error class fails
# test_every_error_has_an_example until it gets one here.
def _examples() -> dict[str, SMClientError]:
    from smclient import local

    service: dict[str, Any] = {
        "error_code": "Code",
        "http_status": 500,
        "request_id": "rid-1",
        "endpoint": "ep",
        "operation": "InvokeEndpoint",
        "target_model": "m.tar.gz",
        "attempts": 3,
    }
    transport: dict[str, Any] = {
        "endpoint": "ep",
        "operation": "InvokeEndpointWithResponseStream",
        "target_model": None,
        "attempts": 2,
        "request_id": "rid-2",
    }
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    s = smclient
    return {
        "SMClientError": s.SMClientError("base"),
        "DuplexClosedError": s.DuplexClosedError("input closed"),
        "StreamReconnectedError": s.StreamReconnectedError(
            "reopened", error=s.StreamInterruptedError("cut", bytes_received=3), attempt=2
        ),
        "InvalidInputError": s.InvalidInputError("body", "too big", limit="6 MB"),
        "ConfigurationError": s.ConfigurationError(
            "no region", endpoint="ep", operation="InvokeEndpoint"
        ),
        "ServiceError": s.ServiceError("m", **service),
        "ValidationError": s.ValidationError("m", **service),
        "ModelError": s.ModelError(
            "m",
            original_status_code=507,
            original_message="oom",
            log_stream_arn="arn:aws:logs:x",
            **service,
        ),
        "ModelNotReadyError": s.ModelNotReadyError("m", **service),
        "ThrottlingError": s.ThrottlingError("m", **service),
        "ServiceUnavailableError": s.ServiceUnavailableError("m", **service),
        "InternalFailureError": s.InternalFailureError("m", **service),
        "InternalDependencyError": s.InternalDependencyError("m", **service),
        "ModelStreamError": s.ModelStreamError(
            "m", stream_error_code="StreamBroken", bytes_received=7, **service
        ),
        "InternalStreamFailureError": s.InternalStreamFailureError("m", **service),
        "TransportError": s.TransportError("t", **transport),
        "ConnectError": s.ConnectError("t", **transport),
        "ReadTimeoutError": s.ReadTimeoutError("t", **transport),
        "ConnectionClosedError": s.ConnectionClosedError("t", **transport),
        "StreamInterruptedError": s.StreamInterruptedError(
            "t", bytes_received=5, chunks_received=2, **transport
        ),
        "StreamTimeoutError": s.StreamTimeoutError(
            "t", bytes_received=5, chunks_received=2, **transport
        ),
        "RetriesExhaustedError": s.RetriesExhaustedError(
            "gave up",
            attempts=3,
            elapsed=1.5,
            history=("A", "B", "C"),
            last_error=s.ModelNotReadyError("m", **service),
        ),
        "SessionError": s.SessionError("busy", session_id="abc", endpoint="ep"),
        "SessionClosedError": s.SessionClosedError(
            "closed",
            session_id="abc",
            endpoint="ep",
            state=s.SessionState.REJECTED,
            server_error=s.ValidationError("m", **service),
        ),
        "SessionExpiredError": s.SessionExpiredError(
            "expired", session_id="abc", endpoint="ep", expires_at=when
        ),
        "SessionHeaderError": s.SessionHeaderError(
            "malformed", header="x; Expires=never", session_id="abc", endpoint="ep"
        ),
        "AsyncInferenceError": s.AsyncInferenceError(
            "failed",
            inference_id="inf-1",
            endpoint="ep",
            failure_location="s3://b/f.out",
            failure_reason="ClientError",
            failure_content=b"{}",
            error_code="E",
        ),
        "AsyncTimeoutError": s.AsyncTimeoutError("pending", pending=(), done=4),
        "S3AccessDeniedError": s.S3AccessDeniedError(
            "denied", operation="GetObject", location="s3://b/k", permission="s3:GetObject"
        ),
        "EndpointCreationError": s.EndpointCreationError(
            "failed",
            endpoint="ep",
            stage="CreateEndpoint",
            failure_reason="quota",
            removed=("model:m",),
            left_behind=("config:c",),
        ),
        "ContainerError": local.ContainerError(507, "out of memory"),
        "ContainerProtocolError": local.ContainerProtocolError(200, "no modelName"),
        "ContainerUnreachableError": local.ContainerUnreachableError("refused"),
        "ContainerTimeoutError": local.ContainerTimeoutError("no answer in 5 s"),
    }


def test_every_error_has_an_example() -> None:
    assert set(_examples()) == set(_public_errors())


def _fields(err: BaseException) -> dict[str, Any]:
    return {k: v for k, v in vars(err).items() if k != "__traceback__"}


def _same(a: object, b: object) -> bool:
    if isinstance(a, BaseException) and isinstance(b, BaseException):
        return type(a) is type(b) and str(a) == str(b) and _same(_fields(a), _fields(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("name", sorted(_examples()))
def test_every_error_pickles_with_its_fields(name: str) -> None:
    err = _examples()[name]
    assert type(err).__name__ == name
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is type(err)
    assert str(clone) == str(err)
    assert _same(_fields(clone), _fields(err))
    assert clone.args == err.args


def test_a_give_up_pickles_and_stays_both_classes() -> None:
    last = smclient.ModelNotReadyError("not ready", error_code="ModelNotReadyException")
    raised = gave_up(last, attempts=4, elapsed=12.5, history=("ModelNotReadyException",) * 4)
    clone = pickle.loads(pickle.dumps(raised))
    for err in (raised, clone):
        assert isinstance(err, smclient.ModelNotReadyError)
        assert isinstance(err, smclient.RetriesExhaustedError)
        assert (err.attempts, err.elapsed, err.history) == (4, 12.5, raised.history)
        assert type(err.last_error) is smclient.ModelNotReadyError
        assert "retries exhausted after 4 attempts" in str(err)
        assert "4 x ModelNotReadyException" in str(err)
    assert type(clone) is type(raised)
    assert type(raised).__module__ == "smclient"
    assert type(raised).__name__ == "ModelNotReadyError"


def test_errors_name_their_public_module_whichever_name_is_touched_first() -> None:
    # A fresh interpreter per order: each imports a private module first, then reads
    # __module__ before anything touches smclient.<Name>.
    expected = {
        name: "smclient.local" if name in smclient.local.__all__ else "smclient"
        for name in _public_errors()
    }
    script = (
        "import importlib, json, sys\n"
        "for m in sys.argv[1:]: importlib.import_module(m)\n"
        "import smclient\n"
        "found = {}\n"
        "todo = [smclient.SMClientError]\n"
        "while todo:\n"
        "    c = todo.pop(); todo.extend(c.__subclasses__())\n"
        "    found[c.__name__] = c.__module__\n"
        "print(json.dumps(found))\n"
    )
    import json

    for first in (list(ERROR_MODULES), list(reversed(ERROR_MODULES))):
        out = subprocess.run(
            [sys.executable, "-c", script, *first],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        found = json.loads(out)
        assert {name: found[name] for name in expected} == expected


def test_a_give_up_of_a_class_that_cannot_be_combined_is_wrapped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import smclient._errors as errors

    def cannot(base: type) -> type:
        raise TypeError("multiple bases have instance lay-out conflict")

    monkeypatch.setattr(errors, "gave_up_class", cannot)
    last = smclient.ServiceUnavailableError("busy", error_code="ServiceUnavailable")
    raised = gave_up(last, attempts=2, elapsed=1.0, history=("A", "B"))
    assert type(raised) is smclient.RetriesExhaustedError
    assert (raised.attempts, raised.history, raised.last_error) == (2, ("A", "B"), last)
    assert raised.__cause__ is last
