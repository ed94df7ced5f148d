"""Values of the local async engine: settings, requests, replies, and their checks.

Limits are those of the service (protocol.md §5, the botocore model of
``InvokeEndpointAsync`` and ``AsyncInferenceConfig``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

import attrs

__all__ = [
    "AsyncAccepted",
    "AsyncRequest",
    "AsyncRequestError",
    "AsyncSettings",
    "AsyncStats",
    "ModelReply",
]

INCLUDE_VALUES = ("SUCCESS_NOTIFICATION_TOPIC", "ERROR_NOTIFICATION_TOPIC")
_TOPIC_ARN = re.compile(r"arn:aws[a-z\-]*:sns:[a-z0-9\-]*:[0-9]{12}:[a-zA-Z0-9_.-]+")
_INPUT_LOCATION = re.compile(r"(https|s3)://([^/]+)/?(.*)", re.DOTALL)
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_ASCII = re.compile(r"[\x00-\x7f]*")
_EXTENSION = re.compile(r"(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+")
_FILENAME = re.compile(r"(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class AsyncRequestError(Exception):
    """A request the async route rejects before queueing it (the service's 400
    ``ValidationError``). The message names the header, the value's problem and the limit.

    .. versionadded:: 0.1.0
    """


def _s3_path(field: str, value: object) -> None:
    if not isinstance(value, str) or not value.startswith("s3://"):
        raise ValueError(f"{field} must be an s3:// URL (s3://bucket[/prefix]), got {value!r}")
    bucket = value[len("s3://") :].split("/", 1)[0]
    if not _BUCKET.fullmatch(bucket):
        raise ValueError(f"{field}: {bucket!r} is not a valid S3 bucket name")


def _topic(field: str, value: object) -> None:
    if value is not None and (not isinstance(value, str) or not _TOPIC_ARN.fullmatch(value)):
        raise ValueError(f"{field} must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")


def _to_tuple(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):  # a lone string is a mistake, not a sequence of letters
        return (value,)
    return tuple(value)


@attrs.frozen
class AsyncSettings:
    """The ``AsyncInferenceConfig`` of a local async endpoint.

    ``s3_output_path``: where outputs go (``s3://bucket[/prefix]``, required).
    ``s3_failure_path``: where failures go (default: under ``s3_output_path``).
    ``success_topic`` / ``error_topic``: SNS topic ARNs notified on completion / failure
    (``None``: no notification). ``include_inference_response_in``: any of
    ``"SUCCESS_NOTIFICATION_TOPIC"``, ``"ERROR_NOTIFICATION_TOPIC"``: the model's response
    (up to 128 KiB) is embedded in that notification. ``max_concurrent_invocations``
    (1..1000, default 4): ``MaxConcurrentInvocationsPerInstance``, the number of
    invocations that run at once; more requests wait in the backlog.

    Invalid values raise ``ValueError``.

    .. versionadded:: 0.1.0
    """

    s3_output_path: str
    s3_failure_path: str | None = None
    success_topic: str | None = None
    error_topic: str | None = None
    include_inference_response_in: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    max_concurrent_invocations: int = 4

    def __attrs_post_init__(self) -> None:
        _s3_path("s3_output_path", self.s3_output_path)
        if self.s3_failure_path is not None:
            _s3_path("s3_failure_path", self.s3_failure_path)
        _topic("success_topic", self.success_topic)
        _topic("error_topic", self.error_topic)
        include = self.include_inference_response_in
        bad = [v for v in include if v not in INCLUDE_VALUES]
        if bad or len(set(include)) != len(include):
            raise ValueError(
                f"include_inference_response_in takes distinct values among {INCLUDE_VALUES}, "
                f"got {include!r}"
            )
        limit = self.max_concurrent_invocations
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValueError(f"max_concurrent_invocations must be an int in 1..1000, got {limit!r}")

    @property
    def topics(self) -> tuple[str, ...]:
        """The distinct configured topics, success topic first."""
        found = [t for t in (self.success_topic, self.error_topic) if t is not None]
        return tuple(dict.fromkeys(found))


@attrs.frozen
class AsyncRequest:
    """One ``InvokeEndpointAsync`` request as the route received it (header values).

    ``input_location``: ``s3://bucket/key`` or an ``https://`` S3 URL. Times in seconds:
    ``request_ttl_seconds`` (60..21600, default 6 h) is how long it may wait in the
    backlog; ``invocation_timeout_seconds`` (1..3600, default 900) how long the model may
    run. ``inference_id`` (1..64 printable, generated when ``None``),
    ``s3_output_path_extension`` (1..512) and ``filename`` (1..32, one dot at most) shape
    the output location. Checked by :meth:`validate`.

    .. versionadded:: 0.1.0
    """

    input_location: str
    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = attrs.field(default=None, repr=False)
    inference_id: str | None = None
    request_ttl_seconds: int = 21600
    invocation_timeout_seconds: int = 900
    s3_output_path_extension: str | None = None
    filename: str | None = None

    def validate(self) -> None:
        """Raise :class:`AsyncRequestError` naming the first header out of its limits."""
        loc = self.input_location
        if not isinstance(loc, str) or not 1 <= len(loc) <= 1024:
            raise AsyncRequestError("InputLocation is required: 1..1024 characters")
        if not _INPUT_LOCATION.fullmatch(loc):
            raise AsyncRequestError(
                f"InputLocation {loc[:100]!r} must be an s3:// or https:// URL of the input object"
            )
        for name, value in (
            ("ContentType", self.content_type),
            ("Accept", self.accept),
            ("CustomAttributes", self.custom_attributes),
        ):
            if value is not None and (len(value) > 1024 or not _ASCII.fullmatch(value)):
                raise AsyncRequestError(f"{name} must be at most 1024 ASCII characters")
        iid = self.inference_id
        if iid is not None and (
            not 1 <= len(iid) <= 64 or not _PRINTABLE.fullmatch(iid) or iid[0] == " "
        ):
            raise AsyncRequestError(
                "InferenceId must be 1..64 printable ASCII characters, not starting with a space"
            )
        _int_range("RequestTTLSeconds", self.request_ttl_seconds, 60, 21600)
        _int_range("InvocationTimeoutSeconds", self.invocation_timeout_seconds, 1, 3600)
        ext = self.s3_output_path_extension
        if ext is not None and (not 1 <= len(ext) <= 512 or not _EXTENSION.fullmatch(ext)):
            raise AsyncRequestError(
                "S3OutputPathExtension must be 1..512 characters of letters, digits and "
                "!_.*'()/- and must not start with s3: or https:"
            )
        filename = self.filename
        if filename is not None and (
            not 1 <= len(filename) <= 32 or not _FILENAME.fullmatch(filename)
        ):
            raise AsyncRequestError(
                "Filename must be 1..32 characters of letters, digits, '-', '_' and at most "
                "one '.', starting with a letter or digit"
            )


def _int_range(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AsyncRequestError(f"{name} must be an integer in {low}..{high}, got {value!r}")


@attrs.frozen
class ModelReply:
    """What the hosted model answered to one invocation.

    ``status``: HTTP-like status (2xx is success; anything else fails the request as a
    model error). ``body``: the response bytes. ``content_type``: the response's MIME
    type (``None``: unknown). ``message``: on an error, the model's error message.

    .. versionadded:: 0.1.0
    """

    status: int
    body: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    content_type: str | None
    message: str | None = attrs.field(default=None, repr=False)


@attrs.frozen
class AsyncStats:
    """Counters of an :class:`AsyncWorker`: ``backlog`` (queued, not started),
    ``in_flight`` (running now), ``completed`` and ``failed`` (since start).

    .. versionadded:: 0.1.0
    """

    backlog: int
    in_flight: int
    completed: int
    failed: int


@attrs.frozen
class AsyncAccepted:
    """The 202 answer: ``inference_id`` (JSON body ``InferenceId``), ``output_location``
    (``X-Amzn-SageMaker-OutputLocation``), ``failure_location``
    (``X-Amzn-SageMaker-FailureLocation``).

    .. versionadded:: 0.1.0
    """

    inference_id: str
    output_location: str
    failure_location: str


def locations(settings: AsyncSettings, request: AsyncRequest, name: str) -> tuple[str, str]:
    """The output and failure URLs of a request whose generated object name is ``name``
    (a uuid). ``Filename`` replaces ``<name>.out``; the failure object adds ``-error``
    before the suffix, so both fit under one path when no failure path is set."""
    ext = request.s3_output_path_extension.strip("/") if request.s3_output_path_extension else ""

    def under(base: str) -> str:
        base = base.rstrip("/")
        return f"{base}/{ext}" if ext else base

    if request.filename:
        stem, dot, suffix = request.filename.partition(".")
        out_name = request.filename
        fail_name = f"{stem}-error{dot}{suffix}"
    else:
        out_name, fail_name = f"{name}.out", f"{name}-error.out"
    failure_base = settings.s3_failure_path or settings.s3_output_path
    return (
        f"{under(settings.s3_output_path)}/{out_name}",
        f"{under(failure_base)}/{fail_name}",
    )


def split_s3_url(url: str) -> tuple[str, str]:
    """``(bucket, key)`` of an ``s3://bucket/key`` URL or an ``https://`` S3 URL
    (virtual-hosted ``bucket.s3[.region].amazonaws.com/key`` or path-style
    ``s3[.region].amazonaws.com/bucket/key``). Raises ``ValueError`` otherwise."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        bucket, key = parts.netloc, parts.path.lstrip("/")
    elif parts.scheme == "https":
        host = (parts.hostname or "").lower()
        path = unquote(parts.path).lstrip("/")
        if host.startswith(("s3.", "s3-")):
            bucket, _, key = path.partition("/")
        elif ".s3." in host or ".s3-" in host:
            bucket, key = host.split(".s3", 1)[0], path
        else:
            raise ValueError(f"{url[:100]!r} is not an S3 URL")
    else:
        raise ValueError(f"{url[:100]!r} is not an s3:// or https:// URL")
    if not bucket or not key:
        raise ValueError(f"{url[:100]!r} does not name a bucket and an object key")
    return bucket, key
