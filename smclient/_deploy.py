"""Control plane: create async and multi-model endpoints, and delete endpoints.

Each creation runs CreateModel -> CreateEndpointConfig -> CreateEndpoint and waits for
``InService`` with a deadline. Every input is checked before the first call; if a step
fails (or the endpoint fails, or is not up in time), what was created is removed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from . import _validation as check
from ._errors import (
    ConnectError,
    InvalidInputError,
    RetriesExhaustedError,
    ServiceError,
    SMClientError,
)
from ._retry import RetryPolicy, run
from .notifications import check_topic

if TYPE_CHECKING:
    from ._endpoint import Endpoint

__all__ = [
    "EndpointCreationError",
    "create_async_endpoint",
    "create_multi_model_endpoint",
    "delete",
    "delete_endpoint",
]

_log = logging.getLogger("smclient")
_REQUEST_BUDGET = 120.0  # seconds one control-plane request may take with its retries, at most
_POLICY = RetryPolicy(timeout=_REQUEST_BUDGET)  # delete(): no clock or sleep given
_ROLE = re.compile(r"arn:aws[a-z\-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}")
_S3 = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?")
_INSTANCE = re.compile(r"ml\.[a-z0-9]+\.[a-z0-9]+")
_INCLUDE = ("SUCCESS_NOTIFICATION_TOPIC", "ERROR_NOTIFICATION_TOPIC")


CreationStage = Literal["CreateModel", "CreateEndpointConfig", "CreateEndpoint", "WaitInService"]


class EndpointCreationError(SMClientError):
    """Creating an endpoint failed; what had been created was removed (as far as possible).

    ``endpoint``, ``stage`` (``"CreateModel"``, ``"CreateEndpointConfig"``,
    ``"CreateEndpoint"`` or ``"WaitInService"``), ``failure_reason`` (SageMaker's
    ``FailureReason`` or the error's text), ``removed`` (what the rollback deleted, as
    ``"model:NAME"`` ...; only real deletions), ``left_behind`` (what may still exist
    because deleting it failed: check and delete it yourself). ``__cause__`` is the
    original error.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        stage: CreationStage,
        failure_reason: str | None,
        removed: Sequence[str] = (),
        left_behind: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.stage = stage
        self.failure_reason = failure_reason
        self.removed = tuple(removed)
        self.left_behind = tuple(left_behind)


EndpointCreationError.__module__ = "smclient"  # re-exported lazily there


@attrs.frozen
class _Wait:
    """How to wait for ``InService``: seconds, and the seams."""

    timeout: float
    poll_interval: float
    on_status: Callable[[str], None] | None
    clock: Callable[[], float]
    sleep: Callable[[float], None]

    def policy(self, until: float | None = None) -> RetryPolicy:
        """The retries of one request: this wait's sleep and clock, at most
        ``_REQUEST_BUDGET`` seconds, and not past ``until`` (on ``clock``) when given."""
        budget = _REQUEST_BUDGET
        if until is not None:
            budget = max(0.0, min(budget, until - self.clock()))
        return RetryPolicy(timeout=budget, sleep=self.sleep, clock=self.clock)


def _require(ok: bool, field: str, problem: str, limit: str | None = None) -> None:
    if not ok:
        raise InvalidInputError(field, problem, limit=limit)


def _s3(field: str, value: object, *, required: bool = False) -> None:
    if value is not None or required:
        ok = isinstance(value, str) and bool(_S3.fullmatch(value))
        _require(ok, field, f"{str(value)[:100]!r} is not an s3:// path", "s3://bucket/prefix")


def _topic(field: str, value: object) -> None:
    if value is not None:
        check_topic(field, value)


def _int_in(field: str, value: object, low: int, high: int | None = None) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and low <= value
    ok = ok and (high is None or value <= high)  # type: ignore[operator]
    _require(ok, field, f"got {value!r}", f"an integer in {low}..{high or ''}")


def _common(
    name: str,
    image_uri: str,
    role_arn: str,
    instance_type: str,
    instance_count: int,
    names: tuple[str | None, str | None],
    environment: Mapping[str, str] | None,
    wait: _Wait,
) -> tuple[str, str]:
    """Check the arguments both kinds share; the model and endpoint config names."""
    check.endpoint_name(name, "name")
    model = check.endpoint_name(names[0] or f"{name}-model"[:63].rstrip("-"), "model_name")
    config = check.endpoint_name(names[1] or f"{name}-config"[:63].rstrip("-"), "config_name")
    uri_ok = isinstance(image_uri, str) and 1 <= len(image_uri) <= 255 and " " not in image_uri
    _require(uri_ok, "image_uri", "must be a container image URI", "1-255 characters")
    role_ok = isinstance(role_arn, str) and bool(_ROLE.fullmatch(role_arn))
    _require(role_ok, "role_arn", f"{str(role_arn)[:100]!r} is not an IAM role ARN",
             "arn:aws:iam::ACCOUNT:role/NAME")  # fmt: skip
    type_ok = isinstance(instance_type, str) and bool(_INSTANCE.fullmatch(instance_type))
    _require(type_ok, "instance_type", f"{instance_type!r} is not an instance type", "ml.*.*")
    _int_in("instance_count", instance_count, 1)
    env_ok = environment is None or all(
        isinstance(k, str) and isinstance(v, str) for k, v in environment.items()
    )
    _require(env_ok, "environment", "keys and values must be strings")
    _require(wait.timeout > 0, "timeout", f"got {wait.timeout}", "seconds, > 0")
    _require(wait.poll_interval > 0, "poll_interval", f"got {wait.poll_interval}", "seconds, > 0")
    return model, config


def create_async_endpoint(
    name: str,
    *,
    image_uri: str,
    role_arn: str,
    instance_type: str,
    output_path: str,
    model_data_url: str | None = None,
    instance_count: int = 1,
    failure_path: str | None = None,
    kms_key_id: str | None = None,
    success_topic: str | None = None,
    error_topic: str | None = None,
    include_inference_response_in: Sequence[str] = (),
    max_concurrent_invocations: int | None = None,
    environment: Mapping[str, str] | None = None,
    model_name: str | None = None,
    config_name: str | None = None,
    timeout: float = 1800.0,
    poll_interval: float = 15.0,
    on_status: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    **endpoint_options: Any,
) -> Endpoint:
    """Create an asynchronous-inference endpoint and return it ready (``InService``).

    ``output_path`` / ``failure_path`` (``s3://``), ``kms_key_id``, ``success_topic`` /
    ``error_topic`` (SNS ARNs), ``include_inference_response_in`` (any of
    ``"SUCCESS_NOTIFICATION_TOPIC"``, ``"ERROR_NOTIFICATION_TOPIC"``) and
    ``max_concurrent_invocations`` (1..1000) form the ``AsyncInferenceConfig``.
    ``model_name`` / ``config_name`` default to ``<name>-model`` / ``<name>-config``.
    Waits up to ``timeout`` seconds (default 1800), checking every ``poll_interval``
    seconds (default 15) and calling ``on_status(status)`` at each check.
    ``endpoint_options`` go to :class:`smclient.Endpoint` (``region``,
    ``aws_endpoint_url``...). Raises :class:`EndpointCreationError` after removing what
    it created; :class:`InvalidInputError` before any call.

    .. versionadded:: 0.1.0
    """
    wait = _Wait(timeout, poll_interval, on_status, clock, sleep)
    names = (model_name, config_name)
    model, config = _common(
        name, image_uri, role_arn, instance_type, instance_count, names, environment, wait
    )
    _s3("output_path", output_path, required=True)
    _s3("failure_path", failure_path)
    _s3("model_data_url", model_data_url)
    _topic("success_topic", success_topic)
    _topic("error_topic", error_topic)
    include = tuple(include_inference_response_in)
    include_ok = all(v in _INCLUDE for v in include) and len(set(include)) == len(include)
    _require(include_ok, "include_inference_response_in", f"got {include!r}", f"of {_INCLUDE}")
    kms_ok = kms_key_id is None or (isinstance(kms_key_id, str) and 1 <= len(kms_key_id) <= 2048)
    _require(kms_ok, "kms_key_id", "must be a KMS key id, alias or ARN", "1-2048 characters")
    if max_concurrent_invocations is not None:
        _int_in("max_concurrent_invocations", max_concurrent_invocations, 1, 1000)
    output: dict[str, Any] = {"S3OutputPath": output_path}
    optional = {"S3FailurePath": failure_path, "KmsKeyId": kms_key_id}
    output.update({k: v for k, v in optional.items() if v})
    notification: dict[str, Any] = {"SuccessTopic": success_topic, "ErrorTopic": error_topic}
    notification["IncludeInferenceResponseIn"] = list(include)
    notification = {k: v for k, v in notification.items() if v}
    if notification:
        output["NotificationConfig"] = notification
    async_config: dict[str, Any] = {"OutputConfig": output}
    if max_concurrent_invocations is not None:
        limit = {"MaxConcurrentInvocationsPerInstance": max_concurrent_invocations}
        async_config["ClientConfig"] = limit
    container: dict[str, Any] = {"Image": image_uri}
    if model_data_url:
        container["ModelDataUrl"] = model_data_url
    variant = (model, instance_type, instance_count)
    extra = {"AsyncInferenceConfig": async_config}
    endpoint = _endpoint(name, endpoint_options)
    return _create(endpoint, config, role_arn, container, environment, variant, extra, wait)


def create_multi_model_endpoint(
    name: str,
    *,
    image_uri: str,
    role_arn: str,
    instance_type: str,
    model_data_prefix: str,
    instance_count: int = 1,
    environment: Mapping[str, str] | None = None,
    model_name: str | None = None,
    config_name: str | None = None,
    timeout: float = 1800.0,
    poll_interval: float = 15.0,
    on_status: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    **endpoint_options: Any,
) -> Endpoint:
    """Create a multi-model endpoint (container ``Mode="MultiModel"``, ``model_data_prefix``
    as its ``ModelDataUrl``: the S3 prefix ``TargetModel`` paths are relative to, ending in
    ``/``) and return it ready. Other arguments as :func:`create_async_endpoint`.

    .. versionadded:: 0.1.0
    """
    wait = _Wait(timeout, poll_interval, on_status, clock, sleep)
    names = (model_name, config_name)
    model, config = _common(
        name, image_uri, role_arn, instance_type, instance_count, names, environment, wait
    )
    _s3("model_data_prefix", model_data_prefix, required=True)
    _require(model_data_prefix.endswith("/"), "model_data_prefix", "must end with '/'")
    container = {"Image": image_uri, "Mode": "MultiModel", "ModelDataUrl": model_data_prefix}
    variant = (model, instance_type, instance_count)
    endpoint = _endpoint(name, endpoint_options)
    return _create(endpoint, config, role_arn, container, environment, variant, {}, wait)


def _endpoint(name: str, options: dict[str, Any]) -> Endpoint:
    from ._endpoint import Endpoint

    return Endpoint(name, **options)


def _create(
    endpoint: Endpoint,
    config: str,
    role_arn: str,
    container: dict[str, Any],
    environment: Mapping[str, str] | None,
    variant: tuple[str, str, int],
    config_extra: dict[str, Any],
    wait: _Wait,
) -> Endpoint:
    sm: Any = endpoint.client("sagemaker")  # builds plain dicts, not the stubs TypedDicts
    name = endpoint.name
    model, instance_type, count = variant
    if environment:
        container["Environment"] = dict(environment)
    production = {"VariantName": "AllTraffic", "ModelName": model,
                  "InstanceType": instance_type, "InitialInstanceCount": count}  # fmt: skip
    steps: list[tuple[CreationStage, str, Callable[[], Any]]] = [
        ("CreateModel", f"model:{model}", lambda: sm.create_model(
            ModelName=model, ExecutionRoleArn=role_arn, PrimaryContainer=container)),
        ("CreateEndpointConfig", f"endpoint-config:{config}", lambda: sm.create_endpoint_config(
            EndpointConfigName=config, ProductionVariants=[production], **config_extra)),
        ("CreateEndpoint", f"endpoint:{name}", lambda: sm.create_endpoint(
            EndpointName=name, EndpointConfigName=config)),
    ]  # fmt: skip
    # Each resource is recorded before its call: a call that times out, loses its
    # connection or answers 5xx may still have created it (deleting one that does not
    # exist is harmless); one the service refused is not ours (its name may be taken).
    created: list[str] = []
    stage: CreationStage = "CreateModel"
    try:
        for stage, what, step in steps:
            created.append(what)
            try:
                _call(endpoint, stage, step, wait.policy())
            except BaseException as exc:
                if not _maybe_created(exc):
                    created.pop()
                raise
        stage = "WaitInService"
        _wait_in_service(endpoint, wait)
    except SMClientError as exc:
        removed, left = _rollback(endpoint, created, wait)
        reason = getattr(exc, "failure_reason", None) or exc.message
        raise EndpointCreationError(
            f"creating endpoint {name!r} failed at {stage}: {reason}; "
            f"removed {removed or 'nothing'}" + (f"; could not remove {left}" if left else ""),
            endpoint=name,
            stage=stage,
            failure_reason=reason,
            removed=removed,
            left_behind=left,
        ) from exc
    except BaseException as exc:
        # KeyboardInterrupt, SystemExit or a bug: still remove what was created (best
        # effort; a second interrupt stops it), then let the original propagate as it is.
        removed, left = _rollback(endpoint, created, wait)
        _log.warning(
            "creating endpoint %r interrupted at %s by %s: removed %s%s",
            name,
            stage,
            type(exc).__name__,
            removed or "nothing",
            f"; could not remove {left}" if left else "",
        )
        raise
    return endpoint


class _NotInService(SMClientError):
    def __init__(self, message: str, failure_reason: str) -> None:
        super().__init__(message)
        self.failure_reason = failure_reason


def _wait_in_service(endpoint: Endpoint, wait: _Wait) -> None:
    sm = endpoint.client("sagemaker")
    deadline = wait.clock() + wait.timeout
    while True:
        found = _call(
            endpoint,
            "DescribeEndpoint",
            lambda: sm.describe_endpoint(EndpointName=endpoint.name),
            wait.policy(until=deadline),
        )
        status = str(found.get("EndpointStatus"))
        if wait.on_status is not None:
            wait.on_status(status)
        if status == "InService":
            return
        if status in ("Failed", "OutOfService", "Deleting"):
            reason = found.get("FailureReason") or f"endpoint status {status}"
            raise _NotInService(f"endpoint status {status}: {reason}", reason)
        left = deadline - wait.clock()
        if left <= 0:
            reason = f"timed out after {wait.timeout:.0f} s in status {status}"
            raise _NotInService(reason, reason)
        wait.sleep(min(wait.poll_interval, left))


def _call(
    endpoint: Endpoint, operation: str, fn: Callable[[], Any], policy: RetryPolicy = _POLICY
) -> Any:
    result, _ = run(policy, fn, endpoint=endpoint.name, operation=operation)
    return result


def _maybe_created(exc: BaseException) -> bool:
    """Whether a create call that raised ``exc`` may still have created its resource.

    No when the service refused it (4xx: a name already taken, a limit, bad input) or the
    request was never sent (connect error): then a resource of that name is not ours and
    must not be rolled back. Yes after a read timeout, a dropped connection, a 5xx, or an
    interrupt mid-call. The errors retried by default (throttling, 503, connect errors) are
    requests the service did not process, so after retries the last error decides.
    """
    if isinstance(exc, RetriesExhaustedError):
        return _maybe_created(exc.last_error)
    if isinstance(exc, ServiceError):
        return exc.http_status is None or exc.http_status >= 500
    # Yes for ReadTimeoutError, ConnectionClosedError, KeyboardInterrupt, a bug...
    return not isinstance(exc, ConnectError | InvalidInputError)


def _rollback(endpoint: Endpoint, attempted: list[str], wait: _Wait) -> tuple[list[str], list[str]]:
    """Delete what may have been created, newest first: ``(removed, left_behind)``.
    ``removed`` holds only real deletions (not what turned out not to exist);
    ``left_behind`` what may still exist because its deletion failed."""
    removed, left = [], []
    for what in reversed(attempted):
        try:
            if _delete_one(endpoint, what, wait.policy()):
                removed.append(what)
        except Exception:  # any failure: it may still exist, report it
            left.append(what)
    return removed, left


def _delete_one(endpoint: Endpoint, what: str, policy: RetryPolicy = _POLICY) -> bool:
    """Delete ``kind:name``; ``False`` when it did not exist."""
    sm = endpoint.client("sagemaker")
    kind, _, name = what.partition(":")
    calls: dict[str, tuple[str, Callable[[], Any], str, Callable[[], Any]]] = {
        "endpoint": ("DeleteEndpoint", lambda: sm.delete_endpoint(EndpointName=name),
                     "DescribeEndpoint", lambda: sm.describe_endpoint(EndpointName=name)),
        "endpoint-config": (
            "DeleteEndpointConfig", lambda: sm.delete_endpoint_config(EndpointConfigName=name),
            "DescribeEndpointConfig", lambda: sm.describe_endpoint_config(EndpointConfigName=name),
        ),
        "model": ("DeleteModel", lambda: sm.delete_model(ModelName=name),
                  "DescribeModel", lambda: sm.describe_model(ModelName=name)),
    }  # fmt: skip
    operation, fn, look, describe = calls[kind]
    try:
        _call(endpoint, operation, fn, policy)
    except ServiceError as exc:
        if not _invalid(exc):
            raise
        # 400 ValidationException means "Could not find ..." but also a refusal (an
        # endpoint still Creating cannot be deleted): only a failed Describe tells.
        try:
            _call(endpoint, look, describe, policy)
        except ServiceError as missing:
            if _invalid(missing):
                return False  # already gone
            raise
        raise
    return True


def _invalid(exc: ServiceError) -> bool:
    return exc.http_status == 400 and exc.error_code in ("ValidationException", "ValidationError")


def delete(
    endpoint: Endpoint | str,
    *,
    keep_config: bool = False,
    keep_models: bool = False,
    **endpoint_options: Any,
) -> list[str]:
    """Delete an endpoint, its endpoint configuration and its models (unless kept).

    ``endpoint``: an :class:`smclient.Endpoint` or a name (then ``endpoint_options`` go
    to ``Endpoint``). What does not exist is skipped. Returns what was deleted, as
    ``"endpoint:NAME"``, ``"endpoint-config:NAME"``, ``"model:NAME"``.

    .. versionadded:: 0.1.0
    """
    ep = _endpoint(endpoint, endpoint_options) if isinstance(endpoint, str) else endpoint
    sm = ep.client("sagemaker")
    targets = [f"endpoint:{ep.name}"]
    try:
        described = _call(
            ep, "DescribeEndpoint", lambda: sm.describe_endpoint(EndpointName=ep.name)
        )
        config = described["EndpointConfigName"]
        if not keep_config:
            targets.append(f"endpoint-config:{config}")
        if not keep_models:
            found = _call(
                ep,
                "DescribeEndpointConfig",
                lambda: sm.describe_endpoint_config(EndpointConfigName=config),
            )
            models = dict.fromkeys(v["ModelName"] for v in found.get("ProductionVariants", []))
            targets += [f"model:{m}" for m in models]
    except ServiceError as exc:
        if exc.http_status != 400:
            raise  # a missing endpoint answers 400 ValidationException: nothing else to find
    return [what for what in targets if _delete_one(ep, what)]


delete_endpoint = delete  # the name under which smclient exports it
