"""Values and errors of the runtime wire protocol, shared by the server and the endpoints.

Errors are answered as the service does, so botocore parses them into the right code:
status, an ``x-amzn-ErrorType`` header and a JSON body with ``message`` (plus the modelled
fields of ``ModelError`` at the top level).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import attrs

__all__ = [
    "ACCOUNT_ID",
    "MAX_PAYLOAD_BYTES",
    "Application",
    "AsyncResult",
    "InvocationRequest",
    "InvocationResult",
    "ServiceError",
    "ServiceFault",
    "StreamFaults",
    "StreamResult",
]

ACCOUNT_ID = "123456789012"
MAX_PAYLOAD_BYTES = 6_291_456  # the runtime's real-time limit (6 MB)


class ServiceFault(Exception):
    """An error answer: ``code`` (``x-amzn-ErrorType``), HTTP ``status``, ``message`` and
    extra modelled ``fields`` put at the top level of the JSON body.

    Public as ``smclient.local.ServiceFault`` (``ServiceError`` inside the package): a
    handler may raise e.g.
    ``ServiceFault.unavailable("...")`` (503) or ``ServiceFault.not_ready("...")`` (429)
    to make the runtime itself answer with that error.

    .. versionadded:: 0.1.0
    """

    def __init__(self, code: str, status: int, message: str, **fields: object) -> None:
        super().__init__(code, status, message)
        self.code = code
        self.status = status
        self.message = message
        self.fields = fields

    def __str__(self) -> str:
        return f"{self.code} ({self.status}): {self.message}"

    @classmethod
    def validation(cls, message: str) -> ServiceFault:
        return cls("ValidationError", 400, message)

    @classmethod
    def not_ready(cls, message: str) -> ServiceFault:
        return cls("ModelNotReadyException", 429, message)

    @classmethod
    def unavailable(cls, message: str) -> ServiceFault:
        return cls("ServiceUnavailable", 503, message)

    @classmethod
    def model_error(cls, endpoint: str, status: int, message: str) -> ServiceFault:
        """``ModelError`` 424 worded as the service words it, with its three fields."""
        group = f"/aws/sagemaker/Endpoints/{endpoint}"
        kind = "client" if 400 <= status < 500 else "server"
        text = (
            f'Received {kind} error ({status}) from primary with message "{message}". '
            f"See https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
            f"#logEventViewer:group={group} in account {ACCOUNT_ID} for more information."
        )
        return cls(
            "ModelError",
            424,
            text,
            OriginalStatusCode=status,
            OriginalMessage=message,
            LogStreamArn=f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:{group}",
        )

    @classmethod
    def endpoint_not_found(cls, name: str) -> ServiceFault:
        return cls.validation(f"Endpoint {name} of account {ACCOUNT_ID} not found.")


ServiceError = ServiceFault  # the name used inside the package


@attrs.frozen
class InvocationRequest:
    """One parsed ``invocations`` / ``invocations-response-stream`` request."""

    endpoint_name: str
    body: bytes
    request_id: str
    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = None
    target_model: str | None = None
    target_variant: str | None = None
    target_container_hostname: str | None = None
    inference_id: str | None = None
    session_id: str | None = None
    inference_component: str | None = None


@attrs.frozen
class InvocationResult:
    """A real-time answer."""

    body: bytes
    content_type: str
    variant: str
    custom_attributes: str | None = None
    new_session_id: str | None = None
    closed_session_id: str | None = None


@attrs.frozen
class StreamFaults:
    """Test knobs for the streaming route (counts are events already sent):

    - ``cut_after_events``: the connection is cut before the next event (the client sees
      ``urllib3.exceptions.ProtocolError`` while iterating);
    - ``stall_after_events``: the server pauses before the next event until
      ``stall_release`` is set or ``stall_timeout`` seconds pass (the client's read timeout
      fires first: ``urllib3.exceptions.ReadTimeoutError``);
    - ``stall_before_response``: the same pause before the status line (botocore raises
      ``ReadTimeoutError`` from the call itself);
    - ``internal_failure_after_events``: the stream ends with an ``InternalStreamFailure``
      event instead of the next event.

    .. versionadded:: 0.1.0
    """

    cut_after_events: int | None = None
    stall_after_events: int | None = None
    stall_before_response: bool = False
    internal_failure_after_events: int | None = None
    stall_release: threading.Event | None = None
    stall_timeout: float = 10.0

    def stall(self) -> None:
        """Pauses until ``stall_release`` is set or ``stall_timeout`` passes."""
        (self.stall_release or threading.Event()).wait(self.stall_timeout)


@attrs.frozen
class StreamResult:
    """A streamed answer: already-encoded event-stream messages."""

    events: Iterator[bytes]
    content_type: str
    variant: str
    custom_attributes: str | None = None
    faults: StreamFaults | None = None


@attrs.frozen
class AsyncResult:
    """The 202 answer of ``async-invocations``."""

    inference_id: str
    output_location: str
    failure_location: str | None = None


class Application(Protocol):
    """What the server asks of the endpoints it hosts."""

    def invoke(self, request: InvocationRequest) -> InvocationResult: ...

    def invoke_stream(self, request: InvocationRequest) -> StreamResult: ...

    def invoke_async(self, endpoint_name: str, headers: Mapping[str, str]) -> AsyncResult: ...

    def status(self) -> dict[str, Any]: ...
