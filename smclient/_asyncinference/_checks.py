"""Checks of ``InvokeEndpointAsync`` arguments, made before anything is uploaded or sent
(protocol.md §5), and ``s3://`` URL helpers."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from .. import _validation as check
from .._errors import InvalidInputError

MAX_INPUT_BYTES = 1024**3  # "up to 1 GB" (protocol.md §5), read as 1 GiB
MAX_INPUT_LOCATION = 1024
TTL_RANGE = (60, 21600)
TIMEOUT_RANGE = (1, 3600)
DEFAULT_TTL = 21600
DEFAULT_TIMEOUT = 900
MAX_EXTENSION = 512
MAX_FILENAME = 32

_EXTENSION = re.compile(r"[a-zA-Z0-9!_.*'()/-]+")
_FILENAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def input_location(value: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError("input_location", f"expected a string, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_INPUT_LOCATION or not value.startswith(("s3://", "https://")):
        raise InvalidInputError(
            "input_location",
            f"{value[:80]!r} is not an S3 location",
            limit="s3://bucket/key or an https:// S3 URL, at most 1024 characters",
        )
    return value


def seconds(field: str, value: int | None, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(field, f"got {value!r}", limit=f"whole seconds, {low}..{high}")
    return value


def output_path_extension(value: str | None) -> str | None:
    value = check.header("s3_output_path_extension", value, maximum=MAX_EXTENSION)
    if value is not None and (
        not _EXTENSION.fullmatch(value) or value.startswith(("s3:", "https:"))
    ):
        raise InvalidInputError(
            "s3_output_path_extension",
            f"{value[:80]!r} is not a valid path extension",
            limit="letters, digits and !_.*'()/-, not starting with s3: or https:",
        )
    return value


def filename(value: str | None) -> str | None:
    value = check.header("filename", value, maximum=MAX_FILENAME)
    if value is not None and (not _FILENAME.fullmatch(value) or value.count(".") > 1):
        raise InvalidInputError(
            "filename",
            f"{value!r} is not a valid output file name",
            limit="1-32 letters, digits, '-', '_', at most one '.', starting with a letter "
            "or digit",
        )
    return value


def input_size(size: int) -> None:
    if size > MAX_INPUT_BYTES:
        raise InvalidInputError(
            "body", f"{size:,} bytes is too large", limit=f"at most {MAX_INPUT_BYTES:,} bytes"
        )


def input_prefix(value: str) -> tuple[str, str]:
    """``(bucket, key prefix)`` of an ``s3://bucket[/prefix]`` input prefix."""
    if not isinstance(value, str) or not value.startswith("s3://"):
        raise InvalidInputError(
            "input_prefix",
            f"{str(value)[:80]!r} is not an s3:// prefix",
            limit="s3://bucket/prefix",
        )
    bucket, _, prefix = value[len("s3://") :].partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise InvalidInputError("input_prefix", f"{bucket!r} is not a valid S3 bucket name")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def split_s3_url(url: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key`` or an ``https://`` S3 URL (virtual-hosted
    or path-style). Raises ``ValueError`` for anything else."""
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
