"""What the local async engine writes and publishes: failure objects and SNS messages.

Notification JSON follows protocol.md §5 (the service's documented shape). Two parts
are this engine's own choice, because the service does not document them precisely:

- the failure object (``application/json``)::

    {"inferenceId": "...", "errorCode": "ModelError", "failureReason": "ClientError: ...",
     "originalStatusCode": 500, "originalMessage": "..."}

  ``originalStatusCode``/``originalMessage`` only for model errors (the message is the
  model's ``message``, else its body as UTF-8, at most 64 KiB).
  ``errorCode`` is one of :data:`ERROR_CODES`.
- the embedded response (``IncludeInferenceResponseIn``, at most 128 KiB):
  ``responseParameters.responseBody = {"content": "...", "encoding": "TEXT" | "BASE64"}``
  (``TEXT`` when the body is UTF-8).
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
from typing import Any

import attrs

from ._types import AsyncAccepted, AsyncRequest, ModelReply

MAX_EMBEDDED_RESPONSE = 128 * 1024
_MAX_ORIGINAL_MESSAGE = 64 * 1024
_LOGS = "See the SageMaker Endpoint logs in your account for more information."

ERROR_CODES = (
    "ModelError",  # the model answered a non-2xx status
    "ModelInvocationTimeExceeded",  # InvocationTimeoutSeconds passed
    "RequestExpired",  # RequestTTLSeconds passed in the backlog
    "InputNotFound",  # the input object or its bucket does not exist
    "InputUnavailable",  # the input could not be read for another reason
    "OutputUnavailable",  # the output could not be written
    "InternalFailure",  # the model host raised or returned nonsense
    "EndpointShutDown",  # the endpoint closed before the request finished
)

TEST_NOTIFICATION = {
    "eventVersion": "1.0",
    "eventSource": "aws:sagemaker",
    "eventName": "TestNotification",
}


@attrs.frozen
class Failure:
    """Why one request failed: ``code`` (one of :data:`ERROR_CODES`), ``reason`` (the
    notification's ``failureReason``) and, for model errors, the model's reply."""

    code: str
    reason: str
    reply: ModelReply | None = None


def model_error(reply: ModelReply) -> Failure:
    kind = "client" if 400 <= reply.status < 500 else "server"
    reason = f"ClientError: Received {kind} error ({reply.status}) from model. {_LOGS}"
    return Failure("ModelError", reason, reply)


def timed_out(seconds: int) -> Failure:
    return Failure(
        "ModelInvocationTimeExceeded",
        f"ClientError: Model invocation timed out: no answer within "
        f"InvocationTimeoutSeconds ({seconds} s).",
    )


def expired(seconds: int) -> Failure:
    return Failure(
        "RequestExpired",
        f"ClientError: Request expired: it waited in the backlog longer than "
        f"RequestTTLSeconds ({seconds} s).",
    )


def input_failure(location: str, error_code: str) -> Failure:
    missing = error_code in ("NoSuchKey", "NoSuchBucket", "404")
    what = "the object does not exist" if missing else "the read failed"
    return Failure(
        "InputNotFound" if missing else "InputUnavailable",
        f"ClientError: Failed to download input data from {location}: {what} ({error_code}).",
    )


def output_failure(location: str, error_code: str) -> Failure:
    return Failure(
        "OutputUnavailable",
        f"ServerError: Failed to upload the output to {location} ({error_code}).",
    )


def internal(what: str) -> Failure:
    return Failure("InternalFailure", f"ServerError: {what} See the local endpoint's log.")


def shut_down(started: bool) -> Failure:
    when = "while the invocation was running" if started else "before the request ran"
    return Failure("EndpointShutDown", f"ServerError: The endpoint shut down {when}.")


def iso(timestamp: float) -> str:
    """``2023-05-23T03:23:21.814Z`` (UTC, milliseconds) for a POSIX timestamp."""
    moment = _dt.datetime.fromtimestamp(timestamp, tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _embedded(body: bytes) -> dict[str, str] | None:
    if len(body) > MAX_EMBEDDED_RESPONSE:
        return None
    try:
        return {"content": body.decode("utf-8"), "encoding": "TEXT"}
    except UnicodeDecodeError:
        return {"content": base64.b64encode(body).decode("ascii"), "encoding": "BASE64"}


def _envelope(
    *,
    endpoint_name: str,
    region: str,
    request: AsyncRequest,
    accepted: AsyncAccepted,
    received: float,
    now: float,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "contentType": request.content_type or "application/octet-stream",
        "endpointName": endpoint_name,
        "inputLocation": request.input_location,
    }
    if request.accept is not None:
        params["accept"] = request.accept
    return {
        "awsRegion": region,
        "eventTime": iso(now),
        "receivedTime": iso(received),
        "invocationStatus": "",
        "requestParameters": params,
        "inferenceId": accepted.inference_id,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }


def success_message(*, reply: ModelReply, include: bool, **envelope: Any) -> str:
    """The success notification's JSON text."""
    message = _envelope(**envelope)
    message["invocationStatus"] = "Completed"
    response: dict[str, Any] = {
        "contentType": reply.content_type or "application/octet-stream",
        "outputLocation": envelope["accepted"].output_location,
    }
    embedded = _embedded(reply.body) if include else None
    if embedded is not None:
        response["responseBody"] = embedded
    message["responseParameters"] = response
    return json.dumps(message)


def failure_message(*, failure: Failure, include: bool, **envelope: Any) -> str:
    """The error notification's JSON text."""
    message = _envelope(**envelope)
    message["invocationStatus"] = "Failed"
    message["failureReason"] = failure.reason
    response: dict[str, Any] = {"failureLocation": envelope["accepted"].failure_location}
    if failure.reply is not None:
        if failure.reply.content_type:
            response["contentType"] = failure.reply.content_type
        embedded = _embedded(failure.reply.body) if include else None
        if embedded is not None:
            response["responseBody"] = embedded
    message["responseParameters"] = response
    return json.dumps(message)


def failure_document(inference_id: str, failure: Failure) -> bytes:
    """The failure object's content (see the module docstring)."""
    doc: dict[str, Any] = {
        "inferenceId": inference_id,
        "errorCode": failure.code,
        "failureReason": failure.reason,
    }
    reply = failure.reply
    if reply is not None:
        doc["originalStatusCode"] = reply.status
        text = reply.message
        if text is None:
            text = reply.body[:_MAX_ORIGINAL_MESSAGE].decode("utf-8", errors="replace")
        doc["originalMessage"] = text[:_MAX_ORIGINAL_MESSAGE]
    return json.dumps(doc).encode("utf-8")


def error_code(exc: BaseException) -> str:
    """The service error code of a botocore error (``NoSuchKey``...), else its type name."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__
