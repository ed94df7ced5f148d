"""Type-checked in CI (``mypy --strict tests/typing_check.py``), never run: pins the types
users see from the public API."""

from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

import smclient
from smclient import (
    ClientConfig,
    Endpoint,
    InvocationResult,
    ModelError,
    ModelHandle,
    RetriesExhaustedError,
    RetryPolicy,
    RetryReason,
)


def check(ep: Endpoint) -> None:
    result = ep.invoke({"a": 1}, target_model="m", retry=RetryPolicy.never())
    assert_type(result, InvocationResult)
    assert_type(result.body, bytes)
    assert_type(result.json(), Any)
    assert_type(result.attempts, int)
    assert_type(ep.model("m"), ModelHandle)
    assert_type(ep.model("m").invoke(b"x"), InvocationResult)
    assert_type(RetryPolicy().including(RetryReason.INTERNAL), RetryPolicy)
    assert_type(ep.config, ClientConfig)
    try:
        ep.invoke(b"x")
    except ModelError as err:
        assert_type(err.original_status_code, int | None)
    except RetriesExhaustedError as err:
        assert_type(err.last_error, smclient.SMClientError)
        assert_type(err.elapsed, float)
