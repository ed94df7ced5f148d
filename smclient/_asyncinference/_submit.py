"""``submit``: upload the input (unless it is already in S3), call ``InvokeEndpointAsync``,
return an :class:`AsyncInvocation` handle. Every limit is checked before anything is sent."""

from __future__ import annotations

import contextlib
import io
import os
import time
import uuid
from typing import TYPE_CHECKING, Any, BinaryIO

from .. import _validation as check
from .._codecs import JSON, Codec
from .._errors import InvalidInputError, ServiceError, SMClientError
from .._request import AsyncResponse, build_async
from .._retry import RetryPolicy, run
from . import _checks as limits
from ._handle import AsyncInvocation, codec_name

if TYPE_CHECKING:
    from .._endpoint import Endpoint

__all__ = ["submit"]

_SLACK = 60.0  # seconds past TTL + timeout before a result is given up on (clock skew, S3 lag)
_CHUNK = 8 * 1024 * 1024  # bytes per multipart part
_PARTS = 4  # parts in flight (and in memory) at once


class _Limited(io.RawIOBase):
    """A non-seekable stream that refuses to yield more than the async input limit."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._seen = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size if size is not None and size >= 0 else _CHUNK)
        if not isinstance(data, bytes | bytearray):
            raise InvalidInputError("body", "file objects must be opened in binary mode ('rb')")
        self._seen += len(data)
        limits.input_size(self._seen)  # aborts the upload (multipart uploads are aborted)
        return bytes(data)


def _remaining(stream: BinaryIO) -> int:
    start = stream.tell()
    end = stream.seek(0, io.SEEK_END)
    stream.seek(start)
    return end - start


def submit(
    endpoint: Endpoint,
    body: Any = None,
    *,
    input_location: str | None = None,
    input_prefix: str | None = None,
    content_type: str | None = None,
    accept: str | None = None,
    custom_attributes: str | None = None,
    inference_id: str | None = None,
    request_ttl: int | None = None,
    invocation_timeout: int | None = None,
    s3_output_path_extension: str | None = None,
    filename: str | None = None,
    codec: Codec | None = None,
    retry: RetryPolicy | None = None,
) -> AsyncInvocation:
    """Submit an asynchronous invocation and return its handle.

    The input is ``input_location`` (an object already in S3: ``s3://bucket/key``) or
    ``body``, uploaded under ``input_prefix`` (``s3://bucket/prefix``) with a unique key:
    ``bytes``, ``str`` (UTF-8), a ``pathlib.Path`` / ``os.PathLike`` to a file, a binary
    file object (both streamed with boto3's managed transfer, never read whole into
    memory), or data encoded with ``codec`` (default JSON). At most
    1 GiB. ``request_ttl`` (60..21600 s, service default 21600) and
    ``invocation_timeout`` (1..3600 s, default 900) set the deadline; ``inference_id``
    (1..64, generated when ``None``), ``s3_output_path_extension`` (1..512) and
    ``filename`` (1..32, one dot at most) are sent as they are. ``codec`` also decodes
    the result. Every argument is checked before anything is uploaded or sent
    (:class:`InvalidInputError`). ``retry``: policy of the S3 upload and the call
    (default: the endpoint's); an uploaded input is deleted when the call fails.

    .. versionadded:: 0.1.0
    """
    headers: dict[str, Any] = {
        "ContentType": check.header("content_type", content_type),
        "Accept": check.header("accept", accept),
        "CustomAttributes": check.custom_attributes(custom_attributes),
        "InferenceId": check.inference_id(inference_id) or str(uuid.uuid4()),
        "RequestTTLSeconds": limits.seconds("request_ttl", request_ttl, *limits.TTL_RANGE),
        "InvocationTimeoutSeconds": limits.seconds(
            "invocation_timeout", invocation_timeout, *limits.TIMEOUT_RANGE
        ),
        "S3OutputPathExtension": limits.output_path_extension(s3_output_path_extension),
        "Filename": limits.filename(filename),
    }
    policy = retry or endpoint.retry
    uploaded: tuple[str, str] | None = None
    if input_location is not None:
        if body is not None:
            raise InvalidInputError("body", "give either body or input_location, not both")
        location = limits.input_location(input_location)
    else:
        if body is None:
            raise InvalidInputError("body", "nothing to submit", limit="body or input_location")
        if input_prefix is None:
            raise InvalidInputError(
                "input_prefix", "needed to upload the body", limit="s3://bucket/prefix"
            )
        bucket, prefix = limits.input_prefix(input_prefix)
        data, stream, suffix, chosen_type = _prepare(body, codec, headers["ContentType"])
        headers["ContentType"] = chosen_type
        key = f"{prefix}{uuid.uuid4().hex}{suffix}"
        _upload(endpoint, policy, bucket, key, data, stream, chosen_type)
        uploaded = (bucket, key)
        location = f"s3://{bucket}/{key}"
    submitted = time.time()
    try:
        response, output_location = _invoke_async(
            endpoint, policy, {**headers, "InputLocation": location}
        )
    except SMClientError:
        if uploaded is not None:
            _delete_quietly(endpoint, *uploaded)
        raise
    ttl = request_ttl or limits.DEFAULT_TTL
    timeout = invocation_timeout or limits.DEFAULT_TIMEOUT
    region, aws_url = _settings(endpoint)
    return AsyncInvocation(
        endpoint_name=endpoint.name,
        inference_id=response.inference_id or headers["InferenceId"],
        output_location=output_location,
        failure_location=response.failure_location,
        input_location=location,
        submitted_at=submitted,
        deadline=submitted + ttl + timeout + _SLACK,
        region=region,
        aws_endpoint_url=aws_url,
        content_type=headers["ContentType"],
        accept=headers["Accept"],
        codec=codec_name(codec),
        request_ttl=request_ttl,
        invocation_timeout=invocation_timeout,
        endpoint=endpoint,
    )


def _invoke_async(
    endpoint: Endpoint, policy: RetryPolicy, headers: dict[str, Any]
) -> tuple[AsyncResponse, str]:
    """The ``InvokeEndpointAsync`` request (boto3 parameter names in ``headers``), sent
    through the endpoint's request layer: its answer and its ``OutputLocation``, which
    is always there (else a :class:`ServiceError`)."""
    response, outcome = endpoint.requester.submit(build_async(endpoint.name, headers), policy)
    if not response.output_location:
        # Without it the result cannot be found. The caller deletes the uploaded input like
        # on any failed call: the queued request then fails instead of running for nothing.
        raise ServiceError(
            "the answer has no OutputLocation: the result cannot be found",
            http_status=response.http_status,
            request_id=response.request_id,
            endpoint=endpoint.name,
            operation="InvokeEndpointAsync",
            attempts=outcome.attempts,
        )
    return response, response.output_location


def _settings(endpoint: Endpoint) -> tuple[str | None, str | None]:
    """The region and ``aws_endpoint_url`` saved in handles, from public attributes only."""
    runtime = endpoint.client("sagemaker-runtime")
    region = getattr(endpoint, "region", None) or getattr(runtime.meta, "region_name", None)
    aws_url = getattr(endpoint, "aws_endpoint_url", None)
    return region, aws_url if isinstance(aws_url, str) else None


def _prepare(
    body: Any, codec: Codec | None, content_type: str | None
) -> tuple[bytes | None, Any, str, str | None]:
    """``(data, stream, key suffix, content type)``: bytes to put, or a stream to upload.
    Checks the size before anything is sent (a non-seekable stream while it is read)."""
    if isinstance(body, os.PathLike):
        path = os.fspath(body)
        if not os.path.isfile(path):
            raise InvalidInputError("body", f"{path!r} is not a file")
        limits.input_size(os.path.getsize(path))
        suffix = os.path.splitext(str(path))[1]
        return None, path, suffix if len(suffix) <= 16 else "", content_type
    if hasattr(body, "read"):
        if getattr(body, "seekable", lambda: False)():
            limits.input_size(_remaining(body))
            return None, body, "", content_type
        return None, _Limited(body), "", content_type
    if isinstance(body, bytes | bytearray | memoryview):
        data = bytes(body)
    elif isinstance(body, str) and codec is None:
        data = body.encode()
    else:
        chosen = codec or JSON
        data = chosen.encode(body)
        content_type = content_type or chosen.content_type
    limits.input_size(len(data))
    if content_type is None and codec is not None:
        content_type = codec.content_type
    return data, None, "", content_type


def _upload(
    endpoint: Endpoint,
    policy: RetryPolicy,
    bucket: str,
    key: str,
    data: bytes | None,
    stream: Any,
    content_type: str | None,
) -> None:
    s3: Any = endpoint.client("s3")  # extra args built as a plain dict
    extra = {"ContentType": content_type} if content_type else {}
    if data is not None:
        run(
            policy,
            lambda: s3.put_object(Bucket=bucket, Key=key, Body=data, **extra),
            endpoint=endpoint.name,
            operation="PutObject",
        )
        return
    _transfer(endpoint, policy, s3, stream, bucket, key, extra)


def _transfer(
    endpoint: Endpoint,
    policy: RetryPolicy,
    s3: Any,
    fileobj: Any,
    bucket: str,
    key: str,
    extra: dict[str, str],
) -> None:
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_chunksize=_CHUNK, max_concurrency=_PARTS)
    # Parts read into memory at once (s3transfer's default is 10): with 4 parts of 8 MiB
    # a file object's upload stays within ~32 MiB. A path is read by s3transfer in
    # pieces while each part is sent, never as whole parts.
    config.max_in_memory_upload_chunks = _PARTS
    if isinstance(fileobj, str):  # a path (retried from the start: nothing to rewind)

        def attempt() -> None:
            s3.upload_file(fileobj, bucket, key, ExtraArgs=extra or None, Config=config)

        run(policy, attempt, endpoint=endpoint.name, operation="PutObject")
        return
    seekable = bool(getattr(fileobj, "seekable", lambda: False)())
    start = fileobj.tell() if seekable else 0

    def attempt_stream() -> None:
        if seekable:
            fileobj.seek(start)  # a retried upload starts from the same place
        s3.upload_fileobj(fileobj, bucket, key, ExtraArgs=extra or None, Config=config)

    run(
        policy if seekable else RetryPolicy.never(),
        attempt_stream,
        endpoint=endpoint.name,
        operation="PutObject",
    )


def _delete_quietly(endpoint: Endpoint, bucket: str, key: str) -> None:
    # Best effort: the caller sees the error of the call itself.
    with contextlib.suppress(SMClientError):
        run(
            RetryPolicy.never(),
            lambda: endpoint.client("s3").delete_object(Bucket=bucket, Key=key),
            endpoint=endpoint.name,
            operation="DeleteObject",
        )
