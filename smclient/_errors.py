"""The smclient exception tree, and the one place that translates botocore errors.

::

    SMClientError
    ├── InvalidInputError               bad input caught before sending (also a ValueError)
    ├── ConfigurationError              no credentials, no region, bad client settings
    ├── ServiceError                    the service or the model answered with an error
    │   ├── ValidationError             400 ValidationError: bad request, unknown endpoint...
    │   ├── ModelError                  424: the model container answered 4xx/5xx (it ran)
    │   ├── ModelNotReadyError          429 ModelNotReadyException: MME model still loading
    │   ├── ThrottlingError             throttled by the service
    │   ├── ServiceUnavailableError     503 ServiceUnavailable
    │   ├── InternalFailureError        500 InternalFailure (the model may have run)
    │   ├── InternalDependencyError     530 InternalDependencyException (may have run)
    │   ├── ModelStreamError            error event in a response stream (.stream_error_code)
    │   └── InternalStreamFailureError  InternalStreamFailure event in a response stream
    ├── TransportError                  no usable HTTP answer
    │   ├── ConnectError                the request was never sent (safe to retry)
    │   ├── ReadTimeoutError            no answer within the read timeout (may have run)
    │   ├── ConnectionClosedError       the connection dropped mid-request (may have run)
    │   └── StreamInterruptedError      a response stream broke after it started (.bytes_received)
    │       └── StreamTimeoutError      ... by a pause longer than the read timeout
    └── RetriesExhaustedError           the policy gave up; ``__cause__``: last error

Every error raised by a public call is an :class:`SMClientError`; a raw
``botocore.exceptions.ClientError`` never escapes. Errors are classified by the
service's error *code*, never by message text. All errors pickle.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import botocore.exceptions as bce

__all__ = [
    "ConfigurationError",
    "ConnectError",
    "ConnectionClosedError",
    "InternalDependencyError",
    "InternalFailureError",
    "InternalStreamFailureError",
    "InvalidInputError",
    "ModelError",
    "ModelNotReadyError",
    "ModelStreamError",
    "ReadTimeoutError",
    "RetriesExhaustedError",
    "SMClientError",
    "ServiceError",
    "ServiceUnavailableError",
    "StreamInterruptedError",
    "StreamTimeoutError",
    "ThrottlingError",
    "TransportError",
    "ValidationError",
]


def _rebuild(cls: type[SMClientError], message: str, state: dict[str, Any]) -> SMClientError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(state)
    return exc


class SMClientError(Exception):
    """Base class of every error smclient raises.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not survive the default Exception pickling.
        state = {k: v for k, v in self.__dict__.items() if k != "__traceback__"}
        return (_rebuild, (type(self), self.message, state))


class InvalidInputError(SMClientError, ValueError):
    """An argument was rejected before any request was sent.

    ``field`` names the argument, ``limit`` states what is allowed.

    .. versionadded:: 0.1.0
    """

    def __init__(self, field: str, problem: str, *, limit: str | None = None) -> None:
        text = f"{field}: {problem}"
        if limit:
            text += f" ({limit})"
        super().__init__(text)
        self.field = field
        self.problem = problem
        self.limit = limit


class ConfigurationError(SMClientError):
    """The client could not be set up: missing credentials or region, bad settings.

    .. versionadded:: 0.1.0
    """


@attrs.frozen
class ErrorContext:
    """Where an error happened: filled in by the caller of :func:`translate`."""

    endpoint: str | None = None
    operation: str | None = None
    target_model: str | None = None
    attempts: int = 1


class ServiceError(SMClientError):
    """The service answered with an error.

    Attributes: ``endpoint``, ``operation`` (for example ``"InvokeEndpoint"``),
    ``error_code`` (the service's code, for example ``"ValidationError"``),
    ``http_status``, ``request_id``, ``target_model`` and ``attempts`` (how many
    requests were sent for this call).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        endpoint: str | None = None,
        operation: str | None = None,
        target_model: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.http_status = http_status
        self.request_id = request_id
        self.endpoint = endpoint
        self.operation = operation
        self.target_model = target_model
        self.attempts = attempts

    def __str__(self) -> str:
        where = f"{self.operation or 'call'} on endpoint {self.endpoint!r}"
        if self.target_model is not None:
            where += f" (target model {self.target_model!r})"
        return (
            f"{self.error_code} (HTTP {self.http_status}) from {where}: {self.message} "
            f"[request id {self.request_id}, attempts {self.attempts}]"
        )


class ValidationError(ServiceError):
    """HTTP 400 ``ValidationError``: the service rejected the request (unknown
    endpoint, TargetModel on a single-model endpoint, missing TargetModel...).
    Not retried: the same request fails the same way.

    .. versionadded:: 0.1.0
    """


class ModelError(ServiceError):
    """HTTP 424 ``ModelError``: the model container answered with an error.

    ``original_status_code`` and ``original_message`` are the container's
    answer; ``log_stream_arn`` points to its CloudWatch logs. The model ran, so
    this is not retried by default (except by opt-in for status 507, see
    :class:`smclient.RetryPolicy`).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        message: str,
        *,
        original_status_code: int | None = None,
        original_message: str | None = None,
        log_stream_arn: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.original_status_code = original_status_code
        self.original_message = original_message
        self.log_stream_arn = log_stream_arn


class ModelNotReadyError(ServiceError):
    """HTTP 429 ``ModelNotReadyException``: a multi-model endpoint is still loading
    the target model (or a serverless variant is provisioning). The model did not
    run; retried by default.

    .. versionadded:: 0.1.0
    """


class ThrottlingError(ServiceError):
    """The service throttled the request; retried by default.

    .. versionadded:: 0.1.0
    """


class ServiceUnavailableError(ServiceError):
    """HTTP 503 ``ServiceUnavailable``; retried by default.

    .. versionadded:: 0.1.0
    """


class InternalFailureError(ServiceError):
    """HTTP 500 ``InternalFailure``. The model may have run: retried only when
    the policy opts in.

    .. versionadded:: 0.1.0
    """


class InternalDependencyError(ServiceError):
    """HTTP 530 ``InternalDependencyException``. The model may have run: retried
    only when the policy opts in.

    .. versionadded:: 0.1.0
    """


class ModelStreamError(ServiceError):
    """The model failed while streaming its answer (a ``ModelStreamError`` event).

    ``stream_error_code`` is the event's ``ErrorCode`` (``"ModelInvocationTimeExceeded"``,
    ``"StreamBroken"``), which botocore drops and smclient recovers from the event itself;
    ``bytes_received`` counts the payload bytes delivered before it.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        message: str,
        *,
        stream_error_code: str | None = None,
        bytes_received: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.stream_error_code = stream_error_code
        self.bytes_received = bytes_received


class InternalStreamFailureError(ServiceError):
    """An ``InternalStreamFailure`` event. Retried (``TRANSIENT``) only when it arrives
    before any byte reached the caller.

    .. versionadded:: 0.1.0
    """


class TransportError(SMClientError):
    """No usable HTTP answer was received.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        operation: str | None = None,
        target_model: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.operation = operation
        self.target_model = target_model
        self.attempts = attempts


class ConnectError(TransportError):
    """The connection could not be made: the request was never sent, so retrying is safe.

    .. versionadded:: 0.1.0
    """


class ReadTimeoutError(TransportError):
    """No answer within the read timeout. The request was sent and the model may
    have run: not retried by default.

    .. versionadded:: 0.1.0
    """


class ConnectionClosedError(TransportError):
    """The connection dropped after the request was sent: the model may have run.

    .. versionadded:: 0.1.0
    """


class StreamInterruptedError(TransportError):
    """A response stream broke after it started: the connection was cut. ``bytes_received``
    and ``chunks_received`` say how much of the answer arrived (and was delivered).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, message: str, *, bytes_received: int = 0, chunks_received: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.bytes_received = bytes_received
        self.chunks_received = chunks_received


class StreamTimeoutError(StreamInterruptedError):
    """A response stream paused longer than the read timeout after it started.

    .. versionadded:: 0.1.0
    """


class RetriesExhaustedError(SMClientError):
    """The retry policy stopped retrying.

    ``attempts`` is how many requests were sent, ``elapsed`` the seconds since the
    first one started, ``history`` the error code of each failed attempt in order,
    ``last_error`` (also ``__cause__``) the last translated error.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        elapsed: float,
        history: tuple[str, ...],
        last_error: SMClientError,
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.elapsed = elapsed
        self.history = history
        self.last_error = last_error


_BY_CODE: dict[str, type[ServiceError]] = {
    "ValidationError": ValidationError,
    "ValidationException": ValidationError,
    "ModelError": ModelError,
    "ModelNotReadyException": ModelNotReadyError,
    "ServiceUnavailable": ServiceUnavailableError,
    "ServiceUnavailableException": ServiceUnavailableError,
    "InternalFailure": InternalFailureError,
    "InternalDependencyException": InternalDependencyError,
    "ThrottlingException": ThrottlingError,
    "Throttling": ThrottlingError,
    "TooManyRequestsException": ThrottlingError,
    "RequestLimitExceeded": ThrottlingError,
    # S3, SQS and SNS, which the async poller and endpoint creation call:
    "SlowDown": ThrottlingError,
    "RequestThrottled": ThrottlingError,
    "AWS.SimpleQueueService.RequestThrottled": ThrottlingError,
    "Throttled": ThrottlingError,
    "ThrottledException": ThrottlingError,
}


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return None


def translate_stream_event(
    headers: dict[str, Any], payload: bytes, ctx: ErrorContext, *, bytes_received: int
) -> SMClientError:
    """Map an event-stream ``exception`` / ``error`` message to the smclient tree.

    Read from the event itself (``:exception-type`` and its JSON payload) because botocore's
    ``EventStreamError`` drops the ``ErrorCode`` member.
    """
    kind = headers.get(":exception-type") or headers.get(":error-code") or "Unknown"
    try:
        body = json.loads(payload) if payload else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("Message") or body.get("message") or headers.get(":error-message") or "")
    common: dict[str, Any] = {
        "error_code": kind,
        "http_status": 200,  # the stream itself had started with 200
        "request_id": None,
        "endpoint": ctx.endpoint,
        "operation": ctx.operation,
        "target_model": ctx.target_model,
        "attempts": ctx.attempts,
    }
    if kind == "ModelStreamError":
        return ModelStreamError(
            message,
            stream_error_code=body.get("ErrorCode"),
            bytes_received=bytes_received,
            **common,
        )
    if kind == "InternalStreamFailure":
        return InternalStreamFailureError(message, **common)
    return ServiceError(message, **common)


def translate_stream_break(
    exc: BaseException, ctx: ErrorContext, *, bytes_received: int, chunks_received: int
) -> SMClientError:
    """Map a failure while reading a started stream (botocore lets raw urllib3 errors
    through there) to :class:`StreamInterruptedError` / :class:`StreamTimeoutError`."""
    import botocore.exceptions
    import urllib3.exceptions

    name = type(exc).__name__
    timeouts = (urllib3.exceptions.TimeoutError, botocore.exceptions.ReadTimeoutError, TimeoutError)
    cls = StreamTimeoutError if isinstance(exc, timeouts) else StreamInterruptedError
    verb = "paused longer than the read timeout" if cls is StreamTimeoutError else "was cut"
    return cls(
        f"the response stream {verb} after {bytes_received} bytes in {chunks_received} "
        f"chunks ({name}: {exc})",
        bytes_received=bytes_received,
        chunks_received=chunks_received,
        endpoint=ctx.endpoint,
        operation=ctx.operation,
        target_model=ctx.target_model,
        attempts=ctx.attempts,
    )


def translate(exc: BaseException, ctx: ErrorContext) -> SMClientError:
    """Map a botocore exception to the smclient tree. The only reader of botocore errors.

    The caller raises the result ``from exc``. Anything smclient does not know
    stays a generic :class:`ServiceError` / :class:`TransportError` with the code.
    """
    if isinstance(exc, SMClientError):
        return exc
    where: dict[str, Any] = {
        "endpoint": ctx.endpoint,
        "operation": ctx.operation,
        "target_model": ctx.target_model,
        "attempts": ctx.attempts,
    }
    if isinstance(exc, bce.ClientError):
        response: dict[str, Any] = dict(exc.response)
        error = response.get("Error") or {}
        meta = response.get("ResponseMetadata") or {}
        code = str(error.get("Code") or "Unknown")
        status = _int_or_none(meta.get("HTTPStatusCode"))
        message = str(error.get("Message") or "")
        common: dict[str, Any] = {
            "error_code": code,
            "http_status": status,
            "request_id": meta.get("RequestId"),
            **where,
        }
        cls = _BY_CODE.get(code)
        if cls is None and status == 429:
            cls = ThrottlingError
        elif cls is None and status == 503:  # e.g. an S3 HEAD answers code "503" without a body
            cls = ServiceUnavailableError
        if cls is ModelError:
            return ModelError(
                message,
                original_status_code=_int_or_none(response.get("OriginalStatusCode")),
                original_message=response.get("OriginalMessage"),
                log_stream_arn=response.get("LogStreamArn"),
                **common,
            )
        return (cls or ServiceError)(message, **common)
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return ConfigurationError(
            f"{exc}. Configure credentials (environment, profile or role), or pass "
            "boto3_session=... to Endpoint."
        )
    if isinstance(exc, bce.NoRegionError):
        return ConfigurationError(
            "No AWS region configured: pass region=... to Endpoint or set AWS_DEFAULT_REGION."
        )
    # Order matters: ConnectTimeoutError is a ConnectionError, ReadTimeoutError is not.
    if isinstance(exc, bce.ConnectionError):
        return ConnectError(f"could not connect: {exc}", **where)
    if isinstance(exc, bce.ReadTimeoutError):
        return ReadTimeoutError(f"no answer within the read timeout: {exc}", **where)
    if isinstance(exc, bce.HTTPClientError):
        return ConnectionClosedError(f"connection failed after sending: {exc}", **where)
    if isinstance(exc, bce.BotoCoreError):
        return SMClientError(f"{type(exc).__name__}: {exc}")
    raise TypeError(f"not a botocore error: {exc!r}")  # programming error, keep it loud


def http_error(operation: str, status: int, headers: Any, body: bytes) -> Exception:
    """An error answer received by smclient's own transport, as the botocore ``ClientError``
    boto3 would raise for it (parsed by botocore's response parser for ``operation``), to be
    raised and then mapped by :func:`translate` like any botocore error. ``headers`` is a
    case-insensitive mapping of the response headers.

    .. versionadded:: 0.2.0
    """
    from botocore.exceptions import ClientError
    from botocore.parsers import create_parser

    model = _runtime_model().operation_model(operation)
    parser = create_parser(model.metadata["protocol"])
    raw = {"status_code": status, "headers": headers, "body": body}
    parsed = parser.parse(raw, model.output_shape)
    # As botocore's endpoint does: a modeled error's members (ModelError's
    # OriginalStatusCode...) join the top level of the parsed response.
    code = (parsed.get("Error") or {}).get("Code")
    shape = model.service_model.shape_for_error_code(code) if code else None
    if shape is not None:
        parsed.update(create_parser(model.metadata["protocol"]).parse(raw, shape))
    meta = parsed.setdefault("ResponseMetadata", {})
    meta["HTTPStatusCode"] = status
    meta["HTTPHeaders"] = {str(k).lower(): v for k, v in headers.items()}
    meta["RetryAttempts"] = 0
    return ClientError(parsed, operation)


_RUNTIME_MODEL: Any = None


def _runtime_model() -> Any:
    global _RUNTIME_MODEL
    if _RUNTIME_MODEL is None:
        from botocore.loaders import create_loader
        from botocore.model import ServiceModel

        _RUNTIME_MODEL = ServiceModel(
            create_loader().load_service_model("sagemaker-runtime", "service-2"),
            "sagemaker-runtime",
        )
    return _RUNTIME_MODEL
