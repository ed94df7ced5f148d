"""Checks made before a request is sent. botocore checks only minimum lengths; the
service's patterns and maximums (protocol.md §1) are checked here so the caller gets an
:class:`InvalidInputError` naming the field and the limit instead of a round trip."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ._errors import InvalidInputError

if TYPE_CHECKING:
    from ._codecs import Codec
    from ._retry import RetryPolicy

MAX_BODY_BYTES = 6_291_456
MAX_ENDPOINT_NAME = 63
MAX_TARGET_MODEL = 1024
MAX_INFERENCE_ID = 64
MAX_CUSTOM_ATTRIBUTES = 1024
MAX_HEADER_VALUE = 1024
MAX_SESSION_ID = 256

_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_COMPONENT = re.compile(r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?")
MAX_NAME = 63
MAX_EXPLANATIONS = 64
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_ASCII = re.compile(r"[\x00-\x7f]*")


def endpoint_name(value: object, field: str = "endpoint_name") -> str:
    if not isinstance(value, str):
        raise InvalidInputError(field, f"expected a string, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_ENDPOINT_NAME or not _NAME.fullmatch(value):
        raise InvalidInputError(
            field,
            f"{value[:80]!r} is not a valid endpoint name",
            limit="1-63 characters: letters, digits and single or repeated hyphens, "
            "starting and ending with a letter or digit",
        )
    return value


def _printable_id(field: str, value: object, maximum: int, meaning: str) -> str:
    """The service's ``\\A\\S[\\p{Print}]*\\z`` values: printable, no leading space."""
    if not isinstance(value, str):
        raise InvalidInputError(field, f"expected a string, got {type(value).__name__}")
    if not 1 <= len(value) <= maximum:
        raise InvalidInputError(
            field, f"length {len(value)} is out of range", limit=f"1-{maximum} characters"
        )
    if value != value.strip(" ") or not _PRINTABLE.fullmatch(value):
        raise InvalidInputError(
            field,
            f"{value[:80]!r} must be printable ASCII and must not start or end with a space "
            "(HTTP drops them in transit)",
            limit=meaning,
        )
    return value


def target_model(value: str) -> str:
    return _printable_id(
        "target_model",
        value,
        MAX_TARGET_MODEL,
        "the model's path relative to the endpoint's ModelDataUrl prefix",
    )


def name(field: str, value: str | None, *, pattern: re.Pattern[str] = _NAME) -> str | None:
    """A variant, container host or inference component name: 1-63 letters, digits, hyphens."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(field, f"expected a string, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_NAME or not pattern.fullmatch(value):
        raise InvalidInputError(
            field,
            f"{value[:80]!r} is not a valid name",
            limit="1-63 letters, digits and inner hyphens",
        )
    return value


def component_name(value: str | None) -> str | None:
    return name("inference_component", value, pattern=_COMPONENT)


def header(field: str, value: str | None, *, maximum: int = MAX_HEADER_VALUE) -> str | None:
    """A value sent as an HTTP header: printable ASCII, 1..``maximum`` characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(field, f"expected a string, got {type(value).__name__}")
    if not 1 <= len(value) <= maximum:
        raise InvalidInputError(
            field, f"length {len(value)} is out of range", limit=f"1-{maximum} characters"
        )
    if not _PRINTABLE.fullmatch(value):
        raise InvalidInputError(
            field, "contains characters that cannot be sent in a header", limit="printable ASCII"
        )
    if value != value.strip(" "):
        raise InvalidInputError(
            field,
            f"{value[:80]!r} starts or ends with a space, which HTTP drops in transit",
            limit="printable ASCII without leading or trailing spaces",
        )
    return value


def custom_attributes(value: str | None) -> str | None:
    if value is not None and isinstance(value, str) and not _ASCII.fullmatch(value):
        raise InvalidInputError("custom_attributes", "must be ASCII", limit="up to 1024 ASCII")
    return header("custom_attributes", value, maximum=MAX_CUSTOM_ATTRIBUTES)


def inference_id(value: str | None) -> str | None:
    if value is None:
        return None
    return _printable_id("inference_id", value, MAX_INFERENCE_ID, "your own request tag")


def session_id(value: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError("session_id", f"expected a string, got {type(value).__name__}")
    if value != "NEW_SESSION" and (
        not 1 <= len(value) <= MAX_SESSION_ID or not _NAME.fullmatch(value)
    ):
        raise InvalidInputError(
            "session_id",
            f"{value[:80]!r} is not a valid session id",
            limit="NEW_SESSION, or up to 256 letters, digits and inner hyphens",
        )
    return value


def body_size(size: int, field: str = "body") -> None:
    if size > MAX_BODY_BYTES:
        raise InvalidInputError(
            field,
            f"{size:,} bytes is larger than a real-time invocation accepts",
            limit=f"at most {MAX_BODY_BYTES:,} bytes; use asynchronous inference for more",
        )


def stream_session_id(value: str | None) -> str | None:
    """The ``session_id`` of a stream: an open session's id, never ``NEW_SESSION``
    (``InvokeEndpointWithResponseStream`` cannot create a session, protocol.md §4)."""
    if value == "NEW_SESSION":
        raise InvalidInputError(
            "session_id",
            "a stream cannot open a session (NEW_SESSION)",
            limit="an open session's id: open it with endpoint.session(), then s.stream(...)",
        )
    return None if value is None else session_id(value)


def retry_policy(value: object, field: str = "retry") -> RetryPolicy | None:
    """``value`` if it is a :class:`smclient.RetryPolicy` (or ``None``), else
    :class:`InvalidInputError` naming ``field``."""
    from ._retry import RetryPolicy

    if value is None or isinstance(value, RetryPolicy):
        return value
    raise InvalidInputError(
        field,
        f"expected a RetryPolicy, got {type(value).__name__}",
        limit="smclient.RetryPolicy(...), RetryPolicy.never() or None",
    )


def codec(value: object, field: str = "codec") -> Codec | None:
    """``value`` if it is a codec (``content_type``, ``encode``, ``decode``) or ``None``,
    else :class:`InvalidInputError` naming ``field``."""
    from ._codecs import Codec

    if value is None or isinstance(value, Codec):
        return value
    raise InvalidInputError(
        field,
        f"expected a codec, got {type(value).__name__}",
        limit="smclient.JSON, CSV, RAW, NPY or an object with content_type, encode, decode",
    )


# botocore's rule (a host label, not all digits), plus: not empty.
_REGION = re.compile(r"(?![0-9]+$)[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?")


def client_options(*, region: object, boto3_session: object) -> None:
    """The ``Endpoint`` constructor's ``region`` and ``boto3_session``, checked when the
    endpoint is made (clients are built lazily, so a bad value would otherwise fail at the
    first call, with an error from inside boto3). URLs: ``_clients.check_url``."""
    if region is not None and (not isinstance(region, str) or not _REGION.fullmatch(region)):
        shown = repr(region[:80]) if isinstance(region, str) else type(region).__name__
        raise InvalidInputError(
            "region", f"{shown} is not a region name", limit="e.g. 'eu-west-1', or None"
        )
    session: Any = boto3_session
    if session is not None and not callable(getattr(session, "client", None)):
        raise InvalidInputError(
            "boto3_session",
            f"expected a boto3.Session, got {type(session).__name__}",
            limit="boto3.Session(...) or None",
        )
