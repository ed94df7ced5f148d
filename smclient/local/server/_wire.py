"""Values, errors and request checks of the runtime wire protocol, shared by the server
and the endpoints.

Errors are answered as the service does, so botocore parses them into the right code:
status, an ``x-amzn-ErrorType`` header and a JSON body with ``message`` (plus the modelled
fields of ``ModelError`` at the top level).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import attrs

__all__ = [
    "ACCOUNT_ID",
    "ENDPOINT_NAME",
    "MAX_PAYLOAD_BYTES",
    "Application",
    "AsyncResult",
    "InvocationRequest",
    "InvocationResult",
    "ServiceError",
    "ServiceFault",
    "StreamFaults",
    "StreamResult",
    "check_member",
    "parse_invocation",
    "response_media_type",
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
        """A ``ValidationError`` (400) with ``message``."""
        return cls("ValidationError", 400, message)

    @classmethod
    def not_ready(cls, message: str) -> ServiceFault:
        """A ``ModelNotReadyException`` (429) with ``message``."""
        return cls("ModelNotReadyException", 429, message)

    @classmethod
    def unavailable(cls, message: str) -> ServiceFault:
        """A ``ServiceUnavailable`` (503) with ``message``."""
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
        """The 400 ``ValidationError`` the service sends for an endpoint ``name`` that
        does not exist."""
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
      ``stall_release`` is set, the server shuts down or ``stall_timeout`` seconds pass (the
      client's read timeout fires first: ``urllib3.exceptions.ReadTimeoutError``);
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

    def stall(self, abort: threading.Event | None = None) -> None:
        """Pauses until ``stall_release`` is set, ``abort`` is set (the server shuts
        down) or ``stall_timeout`` passes."""
        abort = abort or threading.Event()
        if self.stall_release is None:
            abort.wait(self.stall_timeout)
            return
        # Two events to wait on: check the abort between short waits on the release.
        deadline = time.monotonic() + self.stall_timeout
        while not abort.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.stall_release.wait(min(remaining, 0.02)):
                return


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


ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_SESSION = re.compile(r"NEW_SESSION|[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_ASCII = re.compile(r"[\x00-\x7f]*")
_PRINTABLE = re.compile(r"\S[\x20-\x7e]*")


def check_member(value: str | None, member: str, *, max_len: int, pattern: re.Pattern[str]) -> None:
    """400 ``ValidationError`` worded as the service's when ``value`` (if given) is empty,
    longer than ``max_len`` or does not match ``pattern``."""
    if value is None:
        return
    shown = value if len(value) <= 80 else value[:77] + "..."
    prefix = f"1 validation error detected: Value '{shown}' at '{member}' failed to satisfy"
    if not value or len(value) > max_len:
        raise ServiceError.validation(
            f"{prefix} constraint: Member must have length between 1 and {max_len}"
        )
    if not pattern.fullmatch(value):
        raise ServiceError.validation(
            f"{prefix} constraint: Member must satisfy regular expression pattern: "
            f"{pattern.pattern}"
        )


def parse_invocation(
    name: str, body: bytes, request_id: str, headers: Any, *, streaming: bool
) -> InvocationRequest:
    """The request of an invocation route from its (case-insensitive) ``headers``;
    :class:`ServiceFault` 400 for a header over its limit or outside its pattern."""
    h = headers
    accept = h.get("X-Amzn-SageMaker-Accept") if streaming else h.get("Accept")
    request = InvocationRequest(
        endpoint_name=name,
        body=body,
        request_id=request_id,
        content_type=h.get("Content-Type"),
        accept=accept,
        custom_attributes=h.get("X-Amzn-SageMaker-Custom-Attributes"),
        target_model=h.get("X-Amzn-SageMaker-Target-Model"),
        target_variant=h.get("X-Amzn-SageMaker-Target-Variant"),
        target_container_hostname=h.get("X-Amzn-SageMaker-Target-Container-Hostname"),
        inference_id=h.get("X-Amzn-SageMaker-Inference-Id"),
        session_id=h.get("X-Amzn-SageMaker-Session-Id"),
        inference_component=h.get("X-Amzn-SageMaker-Inference-Component"),
    )
    check_member(request.content_type, "contentType", max_len=1024, pattern=_ASCII)
    check_member(request.accept, "accept", max_len=1024, pattern=_ASCII)
    if request.custom_attributes is not None and request.custom_attributes:
        check_member(request.custom_attributes, "customAttributes", max_len=1024, pattern=_ASCII)
    check_member(request.target_model, "targetModel", max_len=1024, pattern=_PRINTABLE)
    check_member(request.target_variant, "targetVariant", max_len=63, pattern=ENDPOINT_NAME)
    check_member(request.inference_id, "inferenceId", max_len=64, pattern=_PRINTABLE)
    check_member(request.session_id, "sessionId", max_len=256, pattern=_SESSION)
    return request


def _media_ranges(accept: str) -> list[tuple[float, int, str]]:
    ranges = []
    for index, item in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in item.split(";"))
        if "/" not in media:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranges.append((-quality, index, media))
    return sorted(ranges)


def response_media_type(accept: str | None, default: str = "application/octet-stream") -> str:
    """The ``Content-Type`` of an answer to a request with ``accept``: the concrete media
    type it prefers (highest ``q``, then first listed), else ``default`` - for no
    ``Accept``, ``*/*`` (aiohttp's default) or only wildcards. Never the list itself."""
    if not accept:
        return default
    for _, _, media in _media_ranges(accept):
        if "*" not in media:
            return media
    return default
