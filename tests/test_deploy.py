"""Control plane helpers against moto: create async / multi-model endpoints, rollback, delete."""
# ruff: noqa: F811  (fixtures imported from tests/_async_helpers.py)

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

import pytest

from smclient import Endpoint, InvalidInputError
from smclient._deploy import (
    EndpointCreationError,
    create_async_endpoint,
    create_multi_model_endpoint,
    delete,
)

from ._async_helpers import Requests, moto, requests, shared_endpoint  # noqa: F401

ROLE = "arn:aws:iam::123456789012:role/sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/model:latest"
TOPIC = "arn:aws:sns:us-east-1:123456789012:done"


@pytest.fixture(scope="module")
def session(moto: None) -> Any:
    """One boto3 session for the endpoints created here: its clients build fast."""
    import boto3

    return boto3.Session(region_name="us-east-1")


@pytest.fixture
def sm(shared_endpoint: Any, session: Any) -> Any:
    SESSION[:] = [session]
    return shared_endpoint.client("sagemaker")


SESSION: list[Any] = []


def names(sm: Any) -> tuple[list[str], list[str], list[str]]:
    return (
        [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]],
        [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]],
        [m["ModelName"] for m in sm.list_models()["Models"]],
    )


def async_kwargs(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "image_uri": IMAGE,
        "role_arn": ROLE,
        "instance_type": "ml.m5.large",
        "output_path": "s3://out-bucket/results",
        "region": "us-east-1",
        "boto3_session": SESSION[0],
    }
    return {**base, **extra}


def test_create_async_endpoint_configures_everything(sm: Any, clock: Any) -> None:
    seen: list[str] = []
    endpoint = create_async_endpoint(
        "async-one",
        **async_kwargs(
            failure_path="s3://out-bucket/failures",
            kms_key_id="alias/mine",
            success_topic=TOPIC,
            error_topic=TOPIC,
            include_inference_response_in=["SUCCESS_NOTIFICATION_TOPIC"],
            max_concurrent_invocations=4,
            model_data_url="s3://models/model.tar.gz",
            environment={"A": "1"},
            on_status=seen.append,
            clock=clock,
            sleep=clock.sleep,
        ),
    )
    assert isinstance(endpoint, Endpoint)
    assert endpoint.name == "async-one"
    assert seen == ["InService"]
    config = sm.describe_endpoint_config(EndpointConfigName="async-one-config")
    output = config["AsyncInferenceConfig"]["OutputConfig"]
    assert output["S3OutputPath"] == "s3://out-bucket/results"
    assert output["S3FailurePath"] == "s3://out-bucket/failures"
    assert output["KmsKeyId"] == "alias/mine"
    assert output["NotificationConfig"]["SuccessTopic"] == TOPIC
    assert output["NotificationConfig"]["IncludeInferenceResponseIn"] == [
        "SUCCESS_NOTIFICATION_TOPIC"
    ]
    assert config["AsyncInferenceConfig"]["ClientConfig"] == {
        "MaxConcurrentInvocationsPerInstance": 4
    }
    model = sm.describe_model(ModelName="async-one-model")
    assert model["PrimaryContainer"]["Environment"] == {"A": "1"}
    assert sorted(delete(endpoint)) == [
        "endpoint-config:async-one-config",
        "endpoint:async-one",
        "model:async-one-model",
    ]
    assert names(sm) == ([], [], [])


def test_create_multi_model_endpoint(sm: Any, clock: Any) -> None:
    endpoint = create_multi_model_endpoint(
        "mme-one",
        image_uri=IMAGE,
        role_arn=ROLE,
        instance_type="ml.g4dn.xlarge",
        model_data_prefix="s3://models/mme/",
        model_name="mme-model",
        region="us-east-1",
        boto3_session=SESSION[0],
        clock=clock,
        sleep=clock.sleep,
    )
    container = sm.describe_model(ModelName="mme-model")["PrimaryContainer"]
    assert container["Mode"] == "MultiModel"
    assert container["ModelDataUrl"] == "s3://models/mme/"
    assert delete("mme-one", boto3_session=SESSION[0], keep_models=True) == [
        "endpoint:mme-one",
        "endpoint-config:mme-one-config",
    ]
    assert names(sm) == ([], [], ["mme-model"])
    sm.delete_model(ModelName="mme-model")
    assert endpoint.name == "mme-one"


def test_delete_of_a_missing_endpoint_deletes_nothing(sm: Any) -> None:
    assert delete("nothing-here", boto3_session=SESSION[0]) == []


@contextlib.contextmanager
def answering(operation: str, status: int, body: dict[str, Any]) -> Iterator[None]:
    """Within the block, new clients answer ``operation`` with ``body`` (moto does the rest)."""

    def answer(**_: Any) -> Any:
        http = types.SimpleNamespace(status_code=status, headers={}, raw=None, content=b"")
        return http, {**body, "ResponseMetadata": {"HTTPStatusCode": status}}

    event = f"before-call.sagemaker.{operation}"
    SESSION[0].events.register(event, answer)
    try:
        yield
    finally:
        SESSION[0].events.unregister(event, answer)


def test_failure_part_way_removes_what_was_created(sm: Any, clock: Any) -> None:
    error_body = {"Error": {"Code": "ResourceLimitExceeded", "Message": "no more endpoints"}}
    with answering("CreateEndpoint", 400, error_body), pytest.raises(EndpointCreationError) as info:
        create_async_endpoint("async-two", **async_kwargs(clock=clock, sleep=clock.sleep))
    error = info.value
    assert error.stage == "CreateEndpoint"
    assert error.removed == ("endpoint-config:async-two-config", "model:async-two-model")
    assert error.left_behind == ()
    assert error.__cause__ is not None
    assert names(sm) == ([], [], [])


def test_a_failed_endpoint_is_removed_with_its_reason(sm: Any, clock: Any) -> None:
    failed = {"EndpointStatus": "Failed", "FailureReason": "image not found"}
    statuses: list[str] = []
    with answering("DescribeEndpoint", 200, failed), pytest.raises(EndpointCreationError) as info:
        create_async_endpoint(
            "async-three",
            **async_kwargs(on_status=statuses.append, clock=clock, sleep=clock.sleep),
        )
    assert info.value.stage == "WaitInService"
    assert info.value.failure_reason == "image not found"
    assert statuses == ["Failed"]
    assert "endpoint:async-three" in info.value.removed
    assert names(sm) == ([], [], [])


def test_waiting_has_a_deadline(sm: Any, clock: Any) -> None:
    creating = {"EndpointStatus": "Creating"}
    with (
        answering("DescribeEndpoint", 200, creating),
        pytest.raises(EndpointCreationError, match="timed out after 60 s") as info,
    ):
        create_async_endpoint(
            "async-four",
            **async_kwargs(timeout=60, poll_interval=15, clock=clock, sleep=clock.sleep),
        )
    assert clock.sleeps == [15, 15, 15, 15]
    assert "endpoint:async-four" in info.value.removed
    assert names(sm) == ([], [], [])


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"role_arn": "sagemaker"}, "role_arn"),
        ({"image_uri": ""}, "image_uri"),
        ({"instance_type": "m5.large"}, "instance_type"),
        ({"instance_count": 0}, "instance_count"),
        ({"output_path": "out-bucket/x"}, "output_path"),
        ({"failure_path": "https://x"}, "failure_path"),
        ({"success_topic": "topic"}, "success_topic"),
        ({"include_inference_response_in": ["BOTH"]}, "include_inference_response_in"),
        ({"max_concurrent_invocations": 1001}, "max_concurrent_invocations"),
        ({"kms_key_id": ""}, "kms_key_id"),
        ({"environment": {"A": 1}}, "environment"),
        ({"model_name": "bad_name"}, "model_name"),
        ({"timeout": 0}, "timeout"),
        ({"poll_interval": 0}, "poll_interval"),
    ],
)
def test_inputs_are_checked_before_any_call(
    sm: Any, requests: Requests, extra: dict[str, Any], field: str
) -> None:
    requests.watch(sm)
    with pytest.raises(InvalidInputError) as info:
        create_async_endpoint("async-five", **async_kwargs(**extra))
    assert info.value.field == field
    assert not requests.params


def test_multi_model_prefix_must_be_a_folder(sm: Any, requests: Requests) -> None:
    requests.watch(sm)
    with pytest.raises(InvalidInputError, match="end with '/'"):
        create_multi_model_endpoint(
            "mme-two",
            image_uri=IMAGE,
            role_arn=ROLE,
            instance_type="ml.g4dn.xlarge",
            model_data_prefix="s3://models/mme",
            region="us-east-1",
        )
    assert not requests.params


@contextlib.contextmanager
def failing_after(operation: str, error: Exception) -> Iterator[None]:
    """Within the block, ``operation`` reaches moto (which does it) and then fails with
    ``error``: the answer was lost, the resource exists."""

    def fail(**_: Any) -> None:
        raise error

    event = f"after-call.sagemaker.{operation}"
    SESSION[0].events.register(event, fail)
    try:
        yield
    finally:
        SESSION[0].events.unregister(event, fail)


def _server_error(operation: str) -> Exception:
    import botocore.exceptions

    body = {"Error": {"Code": "InternalFailure", "Message": "oops"},
            "ResponseMetadata": {"HTTPStatusCode": 500}}  # fmt: skip
    return botocore.exceptions.ClientError(body, operation)  # type: ignore[arg-type]


def _read_timeout() -> Exception:
    import botocore.exceptions

    return botocore.exceptions.ReadTimeoutError(endpoint_url="https://api.sagemaker")


@pytest.mark.parametrize(
    ("operation", "error", "created"),
    [
        ("CreateModel", _server_error("CreateModel"), ["model:async-six-model"]),
        (
            "CreateEndpointConfig",
            _read_timeout(),
            ["endpoint-config:async-six-config", "model:async-six-model"],
        ),
        (
            "CreateEndpoint",
            _read_timeout(),
            ["endpoint:async-six", "endpoint-config:async-six-config", "model:async-six-model"],
        ),
    ],
)
def test_a_step_whose_answer_was_lost_is_rolled_back_too(
    sm: Any, clock: Any, operation: str, error: Exception, created: list[str]
) -> None:
    with failing_after(operation, error), pytest.raises(EndpointCreationError) as info:
        create_async_endpoint("async-six", **async_kwargs(clock=clock, sleep=clock.sleep))
    assert info.value.stage == operation
    assert info.value.removed == tuple(created)
    assert info.value.left_behind == ()
    assert names(sm) == ([], [], [])


def test_removed_lists_only_what_was_really_deleted(sm: Any, clock: Any) -> None:
    failed = {"EndpointStatus": "Failed", "FailureReason": "image not found"}

    def someone_else_deletes_the_model(status: str) -> None:
        sm.delete_model(ModelName="async-seven-model")

    with answering("DescribeEndpoint", 200, failed), pytest.raises(EndpointCreationError) as info:
        create_async_endpoint(
            "async-seven",
            **async_kwargs(
                on_status=someone_else_deletes_the_model, clock=clock, sleep=clock.sleep
            ),
        )
    assert info.value.removed == ("endpoint:async-seven", "endpoint-config:async-seven-config")
    assert "model:" not in str(info.value)
    assert names(sm) == ([], [], [])


def test_what_could_not_be_deleted_is_left_behind(sm: Any, clock: Any) -> None:
    failed = {"EndpointStatus": "Failed", "FailureReason": "image not found"}
    denied = {"Error": {"Code": "AccessDeniedException", "Message": "no"}}
    with (
        answering("DescribeEndpoint", 200, failed),
        answering("DeleteEndpointConfig", 400, denied),
        pytest.raises(EndpointCreationError, match="could not remove") as info,
    ):
        create_async_endpoint("async-eight", **async_kwargs(clock=clock, sleep=clock.sleep))
    assert info.value.removed == ("endpoint:async-eight", "model:async-eight-model")
    assert info.value.left_behind == ("endpoint-config:async-eight-config",)
    assert names(sm) == ([], ["async-eight-config"], [])
    sm.delete_endpoint_config(EndpointConfigName="async-eight-config")


def test_an_interrupt_while_waiting_rolls_back_and_propagates(
    sm: Any, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    creating = {"EndpointStatus": "Creating"}
    with answering("DescribeEndpoint", 200, creating), pytest.raises(KeyboardInterrupt):
        create_async_endpoint("async-nine", **async_kwargs(clock=clock, sleep=interrupted))
    assert names(sm) == ([], [], [])
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "KeyboardInterrupt" in logged
    assert "removed ['endpoint:async-nine'" in logged


def test_an_interrupt_during_a_create_call_rolls_back(sm: Any, clock: Any) -> None:
    with failing_after("CreateEndpoint", KeyboardInterrupt()), pytest.raises(KeyboardInterrupt):
        create_async_endpoint("async-ten", **async_kwargs(clock=clock, sleep=clock.sleep))
    assert names(sm) == ([], [], [])


def rejected_field(fn: Any) -> str | None:
    """The field an ``InvalidInputError`` of ``fn()`` names; ``None`` if it got past the checks."""
    try:
        fn()
    except InvalidInputError as exc:
        return exc.field
    except EndpointCreationError:
        pass
    return None


@pytest.mark.parametrize(
    "topic",
    [
        "arn:aws:sns:us-east-1:123456789012:done",
        "arn:aws-cn:sns:cn-north-1:123456789012:a_b-c",
        "arn:aws:sns:us-east-1:12345678901:short-account",
        "arn:aws:sqs:us-east-1:123456789012:not-sns",
        "arn:aws:sns:us-east-1:123456789012:",
    ],
)
def test_topics_are_checked_like_subscribe_checks_them(sm: Any, topic: str) -> None:
    from smclient.notifications import check_topic

    by_subscribe = rejected_field(lambda: check_topic("success_topic", topic))
    failed = {"EndpointStatus": "Failed", "FailureReason": "stop here"}
    with answering("DescribeEndpoint", 200, failed):
        by_deploy = rejected_field(
            lambda: create_async_endpoint("async-eleven", **async_kwargs(success_topic=topic))
        )
    assert by_deploy == by_subscribe
    assert by_deploy in (None, "success_topic")
    assert names(sm) == ([], [], [])


def test_retries_stop_at_the_deadline(sm: Any, clock: Any) -> None:
    from smclient import RetriesExhaustedError

    busy = {"Error": {"Code": "ServiceUnavailable", "Message": "busy"}}
    with (
        answering("DescribeEndpoint", 503, busy),
        pytest.raises(EndpointCreationError) as info,
    ):
        create_async_endpoint(
            "async-twelve", **async_kwargs(timeout=1e-6, clock=clock, sleep=clock.sleep)
        )
    assert info.value.stage == "WaitInService"
    cause = info.value.__cause__
    assert isinstance(cause, RetriesExhaustedError)
    assert cause.attempts == 1  # no time left for a second DescribeEndpoint
    assert clock.sleeps == []
    assert names(sm) == ([], [], [])


def test_retry_delays_use_the_injected_sleep(sm: Any, clock: Any) -> None:
    busy = {"Error": {"Code": "ServiceUnavailable", "Message": "busy"}}
    with answering("DescribeEndpoint", 503, busy), pytest.raises(EndpointCreationError):
        create_async_endpoint("async-thirteen", **async_kwargs(clock=clock, sleep=clock.sleep))
    assert len(clock.sleeps) == 3  # four attempts of DescribeEndpoint, three delays
    assert names(sm) == ([], [], [])


def test_an_endpoint_that_refuses_deletion_is_left_behind(sm: Any, clock: Any) -> None:
    # SageMaker answers 400 ValidationException both for "not found" and for refusals (an
    # endpoint still Creating cannot be deleted): only a missing one may go unreported.
    creating = {"EndpointStatus": "Creating"}
    refused = {"Error": {"Code": "ValidationException", "Message": "cannot delete while Creating"}}
    with (
        answering("DescribeEndpoint", 200, creating),
        answering("DeleteEndpoint", 400, refused),
        pytest.raises(EndpointCreationError) as info,
    ):
        create_async_endpoint(
            "async-fourteen", **async_kwargs(timeout=30, clock=clock, sleep=clock.sleep)
        )
    assert info.value.left_behind == ("endpoint:async-fourteen",)
    assert info.value.removed == ("endpoint-config:async-fourteen-config",
                                  "model:async-fourteen-model")  # fmt: skip
    assert names(sm) == (["async-fourteen"], [], [])
    assert delete("async-fourteen", boto3_session=SESSION[0]) == ["endpoint:async-fourteen"]


def make_prior(sm: Any) -> None:
    """An endpoint ``prior`` with its config and model, made by someone else."""
    sm.create_model(ModelName="prior-model", ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": IMAGE})  # fmt: skip
    variant = {"VariantName": "AllTraffic", "ModelName": "prior-model",
               "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}  # fmt: skip
    sm.create_endpoint_config(EndpointConfigName="prior-config", ProductionVariants=[variant])
    sm.create_endpoint(EndpointName="prior", EndpointConfigName="prior-config")


@pytest.mark.parametrize(
    ("operation", "names_given", "ours"),
    [
        ("CreateModel", {"model_name": "prior-model"}, ()),
        ("CreateEndpointConfig", {"config_name": "prior-config"}, ("model:fresh-model",)),
        ("CreateEndpoint", {"name": "prior", "model_name": "fresh-model",
                            "config_name": "fresh-config"},
         ("endpoint-config:fresh-config", "model:fresh-model")),
    ],
)  # fmt: skip
def test_a_refused_create_never_deletes_what_was_there_before(
    sm: Any, clock: Any, operation: str, names_given: dict[str, str], ours: tuple[str, ...]
) -> None:
    # 400 "Cannot create already existing ...": that name belongs to someone else.
    make_prior(sm)
    exists = {"Error": {"Code": "ValidationException", "Message": "Cannot create already existing"}}
    kwargs = {"name": "fresh", **names_given}
    try:
        with answering(operation, 400, exists), pytest.raises(EndpointCreationError) as info:
            create_async_endpoint(**async_kwargs(clock=clock, sleep=clock.sleep, **kwargs))
        assert info.value.stage == operation
        assert info.value.removed == ours
        assert info.value.left_behind == ()
        assert names(sm) == (["prior"], ["prior-config"], ["prior-model"])
    finally:
        delete("prior", boto3_session=SESSION[0])
