"""Error translation: botocore's parse of real wire answers (a scripted loopback server)
mapped to the smclient tree by code, never by message."""

from __future__ import annotations

import pickle

import pytest

import smclient
from smclient import (
    InternalDependencyError,
    InternalFailureError,
    ModelNotReadyError,
    RetryPolicy,
    ServiceError,
    ServiceUnavailableError,
    ThrottlingError,
    ValidationError,
)
from smclient.testing import Reply, ScriptedRuntime


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ValidationError", 400, ValidationError),
        ("ModelNotReadyException", 429, ModelNotReadyError),
        ("ThrottlingException", 400, ThrottlingError),
        ("SomethingNew", 429, ThrottlingError),
        ("ServiceUnavailable", 503, ServiceUnavailableError),
        ("InternalFailure", 500, InternalFailureError),
        ("InternalDependencyException", 530, InternalDependencyError),
        ("SomethingNew", 418, ServiceError),
    ],
)
def test_codes_map_to_classes(
    runtime: ScriptedRuntime, code: str, status: int, expected: type[ServiceError]
) -> None:
    runtime.queue(Reply.error(code, status, "Model not ready? Not found? irrelevant text"))
    with pytest.raises(ServiceError) as info:
        runtime.endpoint("errs", retry=RetryPolicy.never()).invoke(b"x", target_model="t")
    err = info.value
    assert type(err) is expected
    assert (err.error_code, err.http_status, err.endpoint, err.target_model) == (
        code,
        status,
        "errs",
        "t",
    )
    assert err.request_id
    assert isinstance(err.__cause__, Exception)  # raised from the botocore error


def test_every_public_error_pickles() -> None:
    errors = [
        smclient.InvalidInputError("body", "too big", limit="6 MB"),
        smclient.ConfigurationError("no region"),
        smclient.ServiceError("m", error_code="X", http_status=500, request_id="r", attempts=2),
        smclient.ModelError(
            "m", original_status_code=507, original_message="oom", error_code="ModelError"
        ),
        smclient.ConnectError("c", endpoint="e", attempts=3),
        smclient.RetriesExhaustedError(
            "gave up",
            attempts=3,
            elapsed=1.5,
            history=("A", "B", "C"),
            last_error=smclient.ModelNotReadyError("m"),
        ),
    ]
    for err in errors:
        clone = pickle.loads(pickle.dumps(err))
        assert type(clone) is type(err)
        assert clone.__dict__ == err.__dict__ or isinstance(err, smclient.RetriesExhaustedError)
        assert str(clone) == str(err)


def test_invalid_input_message_names_field_and_limit() -> None:
    err = smclient.InvalidInputError(
        "inference_id", "length 65 is out of range", limit="1-64 characters"
    )
    assert str(err) == "inference_id: length 65 is out of range (1-64 characters)"


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("SlowDown", 503, ThrottlingError),  # S3
        ("503", 503, ServiceUnavailableError),  # an S3 HEAD: no body, the status as code
        ("AWS.SimpleQueueService.RequestThrottled", 403, ThrottlingError),  # SQS
        ("Throttled", 400, ThrottlingError),  # SNS
    ],
)
def test_other_services_throttling_and_503_are_retryable(
    code: str, status: int, expected: type[ServiceError]
) -> None:
    from botocore.exceptions import ClientError

    from smclient._errors import ErrorContext, translate
    from smclient._retry import RetryReason, classify

    exc = ClientError(
        {"Error": {"Code": code, "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "ListObjectsV2",
    )
    err = translate(exc, ErrorContext(operation="ListObjectsV2"))
    assert type(err) is expected
    assert classify(err) is RetryReason.TRANSIENT
