"""The request layer: frozen request values built and checked without I/O, and the parsed
responses every transport returns.

Features (``Endpoint``, ``ModelHandle``, ``Session``, streams, async-inference ``submit``,
``AsyncEndpoint``) build a :class:`Request` here, then hand it to a sender
(:mod:`smclient._send`) that picks a transport and runs the retry loop. Building never does
I/O, so the sync and the asyncio facades share it; the transports
(:mod:`smclient._transport` for boto3, :mod:`smclient._fasthttp` for the signed fast path,
:mod:`smclient._aiohttp` for asyncio) differ only in how bytes move.

A request carries its headers in the order botocore's serializer emits them, as
``(boto3 parameter, wire header, value)``: the boto3 transport passes the parameters, the
fast transports put the headers on the wire.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs

from . import _validation as check
from ._codecs import Codec, encode_body

__all__ = [
    "ASYNC",
    "INVOKE",
    "STREAM",
    "AsyncResponse",
    "InvokeResponse",
    "Request",
    "StreamResponse",
    "build_async",
    "build_invoke",
    "request_id",
]

INVOKE = "InvokeEndpoint"
STREAM = "InvokeEndpointWithResponseStream"
ASYNC = "InvokeEndpointAsync"

_PATHS = {INVOKE: "invocations", STREAM: "invocations-response-stream", ASYNC: "async-invocations"}

# boto3 parameter -> wire header, in the order of the botocore service model (which is the
# order botocore puts them on the wire).
_INVOKE_HEADERS = (
    ("ContentType", "Content-Type"),
    ("Accept", "Accept"),
    ("CustomAttributes", "X-Amzn-SageMaker-Custom-Attributes"),
    ("TargetModel", "X-Amzn-SageMaker-Target-Model"),
    ("TargetVariant", "X-Amzn-SageMaker-Target-Variant"),
    ("TargetContainerHostname", "X-Amzn-SageMaker-Target-Container-Hostname"),
    ("InferenceId", "X-Amzn-SageMaker-Inference-Id"),
    ("EnableExplanations", "X-Amzn-SageMaker-Enable-Explanations"),
    ("InferenceComponentName", "X-Amzn-SageMaker-Inference-Component"),
    ("SessionId", "X-Amzn-SageMaker-Session-Id"),
)
_STREAM_HEADERS = (
    ("ContentType", "Content-Type"),
    ("Accept", "X-Amzn-SageMaker-Accept"),
    ("CustomAttributes", "X-Amzn-SageMaker-Custom-Attributes"),
    ("TargetVariant", "X-Amzn-SageMaker-Target-Variant"),
    ("TargetContainerHostname", "X-Amzn-SageMaker-Target-Container-Hostname"),
    ("InferenceId", "X-Amzn-SageMaker-Inference-Id"),
    ("InferenceComponentName", "X-Amzn-SageMaker-Inference-Component"),
    ("SessionId", "X-Amzn-SageMaker-Session-Id"),
)
_ASYNC_HEADERS = (
    ("ContentType", "X-Amzn-SageMaker-Content-Type"),
    ("Accept", "X-Amzn-SageMaker-Accept"),
    ("CustomAttributes", "X-Amzn-SageMaker-Custom-Attributes"),
    ("InferenceId", "X-Amzn-SageMaker-Inference-Id"),
    ("InputLocation", "X-Amzn-SageMaker-InputLocation"),
    ("S3OutputPathExtension", "X-Amzn-SageMaker-S3OutputPathExtension"),
    ("Filename", "X-Amzn-SageMaker-Filename"),
    ("RequestTTLSeconds", "X-Amzn-SageMaker-RequestTTLSeconds"),
    ("InvocationTimeoutSeconds", "X-Amzn-SageMaker-InvocationTimeoutSeconds"),
)


@attrs.frozen
class Request:
    """One runtime request, checked and encoded: nothing left to validate at send time.

    ``fields`` are ``(boto3 parameter, wire header, value)`` in wire order; ``body`` is the
    encoded payload (empty for ``InvokeEndpointAsync``).
    """

    operation: str
    endpoint: str
    fields: tuple[tuple[str, str, str], ...]
    body: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    target_model: str | None = None

    @property
    def path(self) -> str:
        """The path under the endpoint URL, for example ``/endpoints/e/invocations``
        (endpoint names are ``[a-zA-Z0-9-]``: nothing to escape)."""
        return f"/endpoints/{self.endpoint}/{_PATHS[self.operation]}"

    def boto3_params(self) -> dict[str, Any]:
        """The keyword arguments of the boto3 client method."""
        params: dict[str, Any] = {"EndpointName": self.endpoint}
        for param, _header, value in self.fields:
            params[param] = int(value) if param.endswith("Seconds") else value
        if self.operation != ASYNC:
            params["Body"] = self.body
        return params

    def with_session(self, session_id: str) -> Request:
        """The same request with ``SessionId`` set (sessions add their id per call)."""
        fields = [f for f in self.fields if f[0] != "SessionId"]
        fields.append(("SessionId", "X-Amzn-SageMaker-Session-Id", check.session_id(session_id)))
        order = _STREAM_HEADERS if self.operation == STREAM else _INVOKE_HEADERS
        return attrs.evolve(self, fields=tuple(_ordered(fields, order)))


def _ordered(
    fields: list[tuple[str, str, str]], order: tuple[tuple[str, str], ...]
) -> list[tuple[str, str, str]]:
    rank = {param: i for i, (param, _h) in enumerate(order)}
    return sorted(fields, key=lambda f: rank[f[0]])


def build_invoke(
    endpoint: str,
    body: Any,
    *,
    operation: str = INVOKE,
    codec: Codec | None = None,
    content_type: str | None = None,
    accept: str | None = None,
    target_model: str | None = None,
    session_id: str | None = None,
    target_variant: str | None = None,
    target_container_hostname: str | None = None,
    inference_component: str | None = None,
    inference_id: str | None = None,
    custom_attributes: str | None = None,
    enable_explanations: str | None = None,
) -> Request:
    """An ``InvokeEndpoint`` (or, with ``operation=STREAM``, a streamed) request; every
    value is checked (:class:`InvalidInputError`) and the body encoded here."""
    data, content_type = encode_body(body, codec=codec, content_type=content_type)
    values: dict[str, str | None] = {
        "ContentType": check.header("content_type", content_type),
        "Accept": check.header("accept", accept),
        "CustomAttributes": check.custom_attributes(custom_attributes),
        "TargetModel": None if target_model is None else check.target_model(target_model),
        "TargetVariant": check.name("target_variant", target_variant),
        "TargetContainerHostname": check.name(
            "target_container_hostname", target_container_hostname
        ),
        "InferenceId": check.inference_id(inference_id),
        "EnableExplanations": check.header(
            "enable_explanations", enable_explanations, maximum=check.MAX_EXPLANATIONS
        ),
        "InferenceComponentName": check.component_name(inference_component),
        "SessionId": check.stream_session_id(session_id)  # a stream cannot open one
        if operation == STREAM
        else (None if session_id is None else check.session_id(session_id)),
    }
    order = _STREAM_HEADERS if operation == STREAM else _INVOKE_HEADERS
    fields = tuple(
        (param, header, value) for param, header in order if (value := values[param]) is not None
    )
    return Request(operation, endpoint, fields, data, target_model)


def build_async(endpoint: str, headers: dict[str, Any]) -> Request:
    """An ``InvokeEndpointAsync`` request from checked boto3 parameters (``None`` skipped)."""
    fields = tuple(
        (param, header, str(headers[param]))
        for param, header in _ASYNC_HEADERS
        if headers.get(param) is not None
    )
    for param, _header, value in fields:
        check.header(param, value, maximum=len(value))  # no CR/LF or other non-printables
    return Request(ASYNC, endpoint, fields, b"")


# -- parsed responses -----------------------------------------------------------------------


def request_id(headers: Callable[[str], str | None]) -> str | None:
    """The request id as botocore's rest-json parser reads it: ``x-amzn-RequestId``, else
    ``x-amz-request-id``."""
    found = headers("x-amzn-requestid")
    return headers("x-amz-request-id") if found is None else found


@attrs.frozen
class InvokeResponse:
    """A successful ``InvokeEndpoint`` answer, whichever transport carried it."""

    body: bytes = attrs.field(repr=False)
    content_type: str | None
    invoked_production_variant: str | None
    custom_attributes: str | None
    request_id: str | None
    new_session_id: str | None = None
    closed_session_id: str | None = None

    @classmethod
    def from_boto3(cls, response: dict[str, Any], body: bytes) -> InvokeResponse:
        return cls(
            body=body,
            content_type=response.get("ContentType"),
            invoked_production_variant=response.get("InvokedProductionVariant"),
            custom_attributes=response.get("CustomAttributes"),
            request_id=(response.get("ResponseMetadata") or {}).get("RequestId"),
            new_session_id=response.get("NewSessionId"),
            closed_session_id=response.get("ClosedSessionId"),
        )

    @classmethod
    def from_headers(cls, headers: Callable[[str], str | None], body: bytes) -> InvokeResponse:
        """From HTTP headers (``headers(name)``: case-insensitive lookup), as botocore parses
        them for this operation."""
        return cls(
            body=body,
            content_type=headers("content-type"),
            invoked_production_variant=headers("x-amzn-invoked-production-variant"),
            custom_attributes=headers("x-amzn-sagemaker-custom-attributes"),
            request_id=request_id(headers),
            new_session_id=headers("x-amzn-sagemaker-new-session-id"),
            closed_session_id=headers("x-amzn-sagemaker-closed-session-id"),
        )


@attrs.define
class StreamResponse:
    """An open ``InvokeEndpointWithResponseStream`` answer: metadata and the raw event-stream
    bytes (``chunks``), which :class:`smclient.ResponseStream` decodes. ``close`` releases
    the connection; ``broken`` are the exception types that mean the connection failed
    mid-stream on this transport."""

    content_type: str | None
    invoked_production_variant: str | None
    custom_attributes: str | None
    request_id: str | None
    chunks: Iterator[bytes] = attrs.field(repr=False)
    close: Callable[[], None] = attrs.field(repr=False)


@attrs.frozen
class AsyncResponse:
    """A successful ``InvokeEndpointAsync`` answer."""

    inference_id: str | None
    output_location: str | None
    failure_location: str | None
    request_id: str | None
    http_status: int | None

    @classmethod
    def from_boto3(cls, response: dict[str, Any]) -> AsyncResponse:
        meta = response.get("ResponseMetadata") or {}
        return cls(
            inference_id=response.get("InferenceId"),
            output_location=response.get("OutputLocation"),
            failure_location=response.get("FailureLocation"),
            request_id=meta.get("RequestId"),
            http_status=meta.get("HTTPStatusCode"),
        )

    @classmethod
    def from_http(
        cls, status: int, headers: Callable[[str], str | None], body: bytes
    ) -> AsyncResponse:
        import json

        try:
            document = json.loads(body) if body else {}
        except ValueError:
            document = {}
        inference_id = document.get("InferenceId") if isinstance(document, dict) else None
        return cls(
            inference_id=inference_id,
            output_location=headers("x-amzn-sagemaker-outputlocation"),
            failure_location=headers("x-amzn-sagemaker-failurelocation"),
            request_id=request_id(headers),
            http_status=status,
        )
