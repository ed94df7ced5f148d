"""The smclient exception tree, and the one place that translates botocore errors.

::

    SMClientError                         every error smclient raises; .message
    ├── InvalidInputError                 bad input caught before sending (also a ValueError)
    ├── ConfigurationError                no credentials, no region, bad client settings
    ├── ServiceError                      the service or the model answered with an error
    │   ├── ValidationError               400 ValidationError: bad request, unknown endpoint...
    │   ├── ModelError                    424: the model container answered 4xx/5xx (it ran)
    │   ├── ModelNotReadyError            429 ModelNotReadyException: MME model still loading
    │   ├── ThrottlingError               throttled by the service
    │   ├── ServiceUnavailableError       503 ServiceUnavailable
    │   ├── InternalFailureError          500 InternalFailure (the model may have run)
    │   ├── InternalDependencyError       530 InternalDependencyException (may have run)
    │   ├── ModelStreamError              error event in a response stream (.stream_error_code)
    │   └── InternalStreamFailureError    InternalStreamFailure event in a response stream
    ├── TransportError                    no usable HTTP answer
    │   ├── ConnectError                  the request was never sent (safe to retry)
    │   ├── ReadTimeoutError              no answer within the read timeout (may have run)
    │   ├── ConnectionClosedError         the connection dropped mid-request (may have run)
    │   └── StreamInterruptedError        a response stream broke after it started
    │       └── StreamTimeoutError        ... by a pause longer than the read timeout
    ├── RetriesExhaustedError             the policy gave up (.attempts .elapsed .history);
    │                                     also a base of the last error raised then, so
    │                                     ``except ModelNotReadyError`` still catches it
    ├── DuplexClosedError                 a bidirectional stream used after its input closed
    ├── StreamReconnectedError            a send met a broken bidirectional stream, which was
    │                                     reopened (.error .attempt); nothing was resent
    ├── SessionError                      a session could not be used as asked
    │   ├── SessionClosedError            closed, detached, or rejected by the endpoint
    │   │   └── SessionExpiredError       past its expiry (checked before sending)
    │   └── SessionHeaderError            malformed NewSessionId / ClosedSessionId (a ValueError)
    ├── AsyncInferenceError               an asynchronous invocation failed (failure object)
    ├── AsyncTimeoutError                 a wait ended with invocations pending (a TimeoutError)
    ├── S3AccessDeniedError               S3 answered 403 where the poller must read
    ├── EndpointCreationError             creating an endpoint failed (rolled back)
    └── smclient.local.ContainerError     a container's management call failed (.status)
        ├── ContainerProtocolError        it answered outside the contract's shape
        └── ContainerUnreachableError     no HTTP answer (status 0)
            └── ContainerTimeoutError     no complete answer within the timeout

Every error raised by a public call is an :class:`SMClientError`; a raw
``botocore.exceptions.ClientError`` never escapes. Errors are classified by the
service's error *code*, never by message text. All errors pickle with their fields, and
every class reports its public module (``smclient`` or ``smclient.local``) as
``__module__``, set where it is defined. ``tests/test_error_tree.py`` checks this drawing
against the classes.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import json
import threading
from typing import Any

import attrs
import botocore.exceptions as bce

__all__ = [
    "ConfigurationError",
    "ConnectError",
    "ConnectionClosedError",
    "DuplexClosedError",
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
    "StreamReconnectedError",
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

    ``endpoint`` and ``operation`` name the call that needed the client, when there was
    one (``None`` for an error raised by a constructor).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, message: str, *, endpoint: str | None = None, operation: str | None = None
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.operation = operation


@attrs.frozen
class ErrorContext:
    """Where an error happened: filled in by the caller of :func:`translate`."""

    endpoint: str | None = None
    operation: str | None = None
    target_model: str | None = None
    attempts: int = 1
    request_id: str | None = None


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
        if self.error_code is None:  # not an error answer: the answer was unusable
            status = "" if self.http_status is None else f" with HTTP {self.http_status}"
            head = f"{where} answered{status}, but {self.message}"
        else:
            status = "" if self.http_status is None else f" (HTTP {self.http_status})"
            head = f"{self.error_code}{status} from {where}: {self.message}"
        return f"{head} [request id {self.request_id}, attempts {self.attempts}]"


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

    Attributes: ``endpoint``, ``operation``, ``target_model``, ``attempts`` (the number of
    the attempt that failed) and ``request_id`` (set when a response had started, as for a
    broken response stream; ``None`` otherwise).

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
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.operation = operation
        self.target_model = target_model
        self.attempts = attempts
        self.request_id = request_id

    def __str__(self) -> str:
        where = f"{self.operation or 'call'} on endpoint {self.endpoint!r}"
        if self.target_model is not None:
            where += f" (target model {self.target_model!r})"
        rid = "" if self.request_id is None else f"request id {self.request_id}, "
        return f"{where}: {self.message} [{rid}attempts {self.attempts}]"


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
    """The retry policy gave up.

    When a policy gives up, smclient raises the last attempt's own error - a
    :class:`ModelNotReadyError` for a cold start that ran out of time, a
    :class:`ServiceUnavailableError`... - as an instance of a class derived from both
    that error's class and this one. So ``except ModelNotReadyError`` catches it, and so
    does ``except RetriesExhaustedError``. It carries everything of the last error
    (``error_code``, ``request_id``, ``attempts``...) plus ``elapsed`` (seconds since the
    first attempt started) and ``history`` (the error code of each failed attempt, in
    order). ``last_error`` and ``__cause__`` are the last attempt's error as it was raised
    (a plain :class:`ModelNotReadyError`..., raised from botocore's error), as in the
    first release, where this class was only a wrapper.

    The constructor still builds a plain wrapper, as before.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       Raised as the last error itself (also a subclass of its own class).
    """

    attempts: int
    elapsed: float
    history: tuple[str, ...]

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


_GAVE_UP: dict[type[SMClientError], type[SMClientError]] = {}
_GAVE_UP_LOCK = threading.Lock()


def _gave_up_reduce(self: SMClientError) -> tuple[Any, ...]:
    state = {k: v for k, v in self.__dict__.items() if k != "__traceback__"}
    base = type(self)._gave_up_base  # type: ignore[attr-defined]
    return (_rebuild_gave_up, (base, self.message, state))


def _gave_up_str(self: SMClientError) -> str:
    base = type(self)._gave_up_base  # type: ignore[attr-defined]
    history: tuple[str, ...] = getattr(self, "history", ())
    counts: dict[str, int] = {}
    for code in history:
        counts[code] = counts.get(code, 0) + 1
    summary = ", ".join(f"{n} x {code}" for code, n in counts.items())
    return (
        f"{base.__str__(self)}; retries exhausted after {len(history)} attempts in "
        f"{getattr(self, 'elapsed', 0.0):.3f} s ({summary})"
    )


def gave_up_class(base: type[SMClientError]) -> type[SMClientError]:
    """The class derived from ``base`` and :class:`RetriesExhaustedError` (cached, so
    ``type(a) is type(b)`` for two give-ups with the same last error class)."""
    with _GAVE_UP_LOCK:
        cls = _GAVE_UP.get(base)
        if cls is None:
            namespace = {
                "__module__": base.__module__,
                "__qualname__": base.__qualname__,
                "__doc__": f"A {base.__name__} raised when the retry policy gave up "
                "(also a RetriesExhaustedError).",
                "_gave_up_base": base,
                "__reduce__": _gave_up_reduce,
                "__str__": _gave_up_str,
            }
            cls = type(base.__name__, (base, RetriesExhaustedError), namespace)
            _GAVE_UP[base] = cls
        return cls


def _rebuild_gave_up(
    base: type[SMClientError], message: str, state: dict[str, Any]
) -> SMClientError:
    return _rebuild(gave_up_class(base), message, state)


def gave_up(
    error: SMClientError, *, attempts: int, elapsed: float, history: tuple[str, ...]
) -> SMClientError:
    """``error`` as raised when the policy gives up: a copy whose class also derives from
    :class:`RetriesExhaustedError`, with ``attempts``, ``elapsed`` and ``history`` set;
    ``last_error`` and ``__cause__`` are ``error`` itself (whose cause is botocore's)."""
    base = type(error)
    if isinstance(error, RetriesExhaustedError):  # already a give-up (a nested call's)
        return error
    try:
        cls = gave_up_class(base)
    except TypeError:  # a class that cannot be combined (layout, metaclass): wrap it
        wrapper = RetriesExhaustedError(
            f"retries exhausted after {attempts} attempts in {elapsed:.3f} s: {error}",
            attempts=attempts,
            elapsed=elapsed,
            history=history,
            last_error=error,
        )
        wrapper.__cause__ = error
        return wrapper
    exc = _rebuild(cls, error.message, dict(error.__dict__))
    exc.args = error.args
    exc.__dict__.update(attempts=attempts, elapsed=elapsed, history=history, last_error=error)
    exc.__cause__ = error
    exc.__suppress_context__ = True
    return exc


_CONFIGURATION_ERRORS = (
    bce.UnknownServiceError,
    bce.DataNotFoundError,
    bce.ProfileNotFound,
    bce.ConfigNotFound,
    bce.ConfigParseError,
    bce.InvalidConfigError,
    bce.UnknownSignatureVersionError,
    bce.CredentialRetrievalError,
    bce.TokenRetrievalError,
    bce.UnknownCredentialError,
    bce.NoAuthTokenError,
    bce.SSOError,
    bce.InvalidRegionError,
    bce.UnknownEndpointError,
    bce.InvalidEndpointConfigurationError,
)

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
        "request_id": ctx.request_id,
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
        request_id=ctx.request_id,
    )


_MODEL_ERROR_FIELDS = ("OriginalStatusCode", "OriginalMessage", "LogStreamArn")


def keep_model_error_fields(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """botocore ``before-parse`` hook of the runtime client: keep ``OriginalStatusCode``,
    ``OriginalMessage`` and ``LogStreamArn`` of a 424 answer.

    botocore puts these members into ``ClientError.response`` only when the answer names
    its error type (``x-amzn-ErrorType`` or ``__type``); a 424 without one would lose
    them, so they are copied from the JSON body here, before botocore parses it.
    """
    if response_dict.get("status_code") != 424:
        return
    try:
        body = json.loads(response_dict.get("body") or b"")
    except (TypeError, ValueError, RecursionError):
        return
    if isinstance(body, dict):
        for key in _MODEL_ERROR_FIELDS:
            if body.get(key) is not None:
                customized_response_dict.setdefault(key, body[key])


def _where(ctx: ErrorContext) -> str:
    text = f"{ctx.operation or 'call'} on endpoint {ctx.endpoint!r}"
    return text if ctx.target_model is None else f"{text} (target model {ctx.target_model!r})"


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
        if cls is None and status == 424:  # a ModelError without its error type
            cls = ModelError
            if code == "Unknown" or code == "424":
                common["error_code"] = "ModelError"
        elif cls is None and status == 429:
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
            f"{_where(ctx)}: {exc}. Configure credentials (environment, profile or role), or "
            "pass boto3_session=... to Endpoint.",
            endpoint=ctx.endpoint,
            operation=ctx.operation,
        )
    if isinstance(exc, bce.NoRegionError):
        return ConfigurationError(
            f"{_where(ctx)}: no AWS region configured: pass region=... to Endpoint or set "
            "AWS_DEFAULT_REGION.",
            endpoint=ctx.endpoint,
            operation=ctx.operation,
        )
    # Order matters: ConnectTimeoutError is a ConnectionError, ReadTimeoutError is not.
    if isinstance(exc, bce.ConnectionError):
        return ConnectError(f"could not connect: {exc}", **where)
    if isinstance(exc, bce.ReadTimeoutError):
        return ReadTimeoutError(f"no answer within the read timeout: {exc}", **where)
    if isinstance(exc, bce.HTTPClientError):
        return ConnectionClosedError(f"connection failed after sending: {exc}", **where)
    if isinstance(exc, bce.ParamValidationError):  # something the checks here let through
        return InvalidInputError(
            "request", f"{_where(ctx)}: botocore refused the parameters: {exc}"
        )
    if isinstance(exc, _CONFIGURATION_ERRORS):
        return ConfigurationError(
            f"{_where(ctx)}: {type(exc).__name__}: {exc}",
            endpoint=ctx.endpoint,
            operation=ctx.operation,
        )
    if isinstance(exc, bce.BotoCoreError):  # checksum, parse and other response problems
        return TransportError(f"{type(exc).__name__}: {exc}", **where)
    raise TypeError(f"not a botocore error: {exc!r}")  # programming error, keep it loud


# --- Bidirectional streaming (InvokeEndpointWithBidirectionalStream, protocol.md §8) ---


class DuplexClosedError(SMClientError, RuntimeError):
    """A bidirectional stream was used after its input was closed or after it ended
    (``send`` after ``close_input``, or after the ``with`` block). A stream that *failed*
    raises its failure instead (a :class:`ModelStreamError`, ...), never this.

    .. versionadded:: 0.2.0
    """


# The HTTP/2 service's own error shapes, by code (``x-amzn-errortype``), then by status.
_BIDI_BY_CODE: dict[str, type[ServiceError]] = {
    "InputValidationError": ValidationError,
    "ModelError": ModelError,
    "InternalServerError": InternalFailureError,
    "ServiceUnavailableError": ServiceUnavailableError,
}
_BIDI_BY_STATUS: dict[int, type[ServiceError]] = {
    400: ValidationError,
    424: ModelError,
    429: ThrottlingError,
    500: InternalFailureError,
    503: ServiceUnavailableError,
}


def translate_bidi_response(
    status: int, headers: dict[str, str], body: bytes, ctx: ErrorContext
) -> ServiceError:
    """Map a bidirectional stream's error answer (an HTTP status other than 200, before
    any event) to the smclient tree, by ``x-amzn-errortype`` then by status.

    ``headers`` have lower-case names. ``ModelError`` keeps the container's original
    status, message and log stream (424 also means the container refused the WebSocket).
    """
    code = (headers.get("x-amzn-errortype") or "").split(":", 1)[0].strip()
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = {}
    fields: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    if not code:
        code = str(fields.get("__type") or fields.get("code") or "").rsplit("#", 1)[-1]
    cls = _BIDI_BY_CODE.get(code) or _BY_CODE.get(code) or _BIDI_BY_STATUS.get(status)
    message = str(
        fields.get("Message") or fields.get("message") or body[:500].decode(errors="replace")
    )
    common: dict[str, Any] = {
        "error_code": code or f"HTTP{status}",
        "http_status": status,
        "request_id": headers.get("x-amzn-requestid"),
        "endpoint": ctx.endpoint,
        "operation": ctx.operation,
        "target_model": ctx.target_model,
        "attempts": ctx.attempts,
    }
    if cls is ModelError:
        return ModelError(
            message,
            original_status_code=_int_or_none(fields.get("OriginalStatusCode")),
            original_message=fields.get("OriginalMessage"),
            log_stream_arn=fields.get("LogStreamArn"),
            **common,
        )
    return (cls or ServiceError)(message, **common)


class StreamReconnectedError(SMClientError):
    """A ``send`` met a broken bidirectional stream and the reconnect policy opened a new
    one. The message was *not* sent again (the model may or may not have received it):
    send it again if it should be. ``error`` is what broke the old stream, ``attempt`` the
    reconnect count. Raised only when a :class:`ReconnectPolicy` was given.

    .. versionadded:: 0.2.0
    """

    def __init__(self, message: str, *, error: SMClientError, attempt: int) -> None:
        super().__init__(message)
        self.error = error
        self.attempt = attempt


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
    # As the boto3 path's before-parse hook does for a 424 without its error type.
    keep_model_error_fields(raw, parsed)
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


def _set_public_module() -> None:
    # Tracebacks and reprs say smclient.ModelError, whichever name was touched first.
    for name in __all__:
        cls = globals()[name]
        if isinstance(cls, type):
            cls.__module__ = "smclient"


_set_public_module()
