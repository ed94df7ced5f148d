"""The S3 requests of async inference, each through the one retry loop (``run``).

403 is told apart from 404: a 404 means "not written yet", a 403 raises
:class:`S3AccessDeniedError` naming the permission that is probably missing.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from .._errors import ServiceError
from .._retry import RetryPolicy, run
from ._errors import S3AccessDeniedError

POLICY = RetryPolicy(timeout=60.0)  # when the caller has no policy of its own (downloads)
_PERMISSION = {
    "ListObjectsV2": "s3:ListBucket on the bucket",
    "HeadObject": "s3:GetObject on the objects (and s3:ListBucket on the bucket, without "
    "which S3 answers 403 instead of 404 for objects not written yet)",
    "GetObject": "s3:GetObject on the objects",
}


def denied(exc: ServiceError) -> bool:
    return exc.http_status == 403 or exc.error_code in ("AccessDenied", "403")


def missing(exc: ServiceError) -> bool:
    return exc.http_status == 404 or exc.error_code in ("NoSuchKey", "404", "NotFound")


def access_error(operation: str, location: str, exc: ServiceError) -> S3AccessDeniedError:
    error = S3AccessDeniedError(
        f"S3 denied {operation} on {location} (HTTP 403): grant {_PERMISSION[operation]}",
        operation=operation,
        location=location,
        permission=_PERMISSION[operation],
    )
    error.__cause__ = exc
    return error


def get(
    s3: Any, bucket: str, key: str, *, endpoint: str | None, policy: RetryPolicy = POLICY
) -> tuple[bytes, str | None]:
    """The object's bytes and content type. ServiceError 404 when missing."""

    def attempt() -> tuple[bytes, str | None]:
        found = s3.get_object(Bucket=bucket, Key=key)
        with found["Body"] as body:
            return body.read(), found.get("ContentType")

    try:
        result, _ = run(policy, attempt, endpoint=endpoint, operation="GetObject")
    except ServiceError as exc:
        if denied(exc):
            raise access_error("GetObject", f"s3://{bucket}/{key}", exc) from exc
        raise
    return result


def exists(
    s3: Any, bucket: str, key: str, *, endpoint: str | None, policy: RetryPolicy = POLICY
) -> int | None:
    """The object's size when it exists, ``None`` when S3 answers 404 (or gives no size)."""
    return head(s3, bucket, key, endpoint=endpoint, policy=policy)[1]


def head(
    s3: Any, bucket: str, key: str, *, endpoint: str | None, policy: RetryPolicy = POLICY
) -> tuple[bool, int | None]:
    """``(exists, size)`` from one ``HeadObject``: ``(False, None)`` when S3 answers 404."""
    try:
        answer, _ = run(
            policy,
            lambda: s3.head_object(Bucket=bucket, Key=key),
            endpoint=endpoint,
            operation="HeadObject",
        )
    except ServiceError as exc:
        if missing(exc):
            return False, None
        if denied(exc):
            raise access_error("HeadObject", f"s3://{bucket}/{key}", exc) from exc
        raise
    size = answer.get("ContentLength")
    return True, size if isinstance(size, int) else None


def find(
    s3: Any,
    bucket: str,
    prefix: str,
    wanted: Collection[str],
    *,
    endpoint: str | None,
    policy: RetryPolicy = POLICY,
) -> tuple[dict[str, int | None], int]:
    """``({key: size}, pages)``: which ``wanted`` keys exist under ``prefix``, listed with
    one ``ListObjectsV2`` request per 1,000 objects (``pages`` requests).

    Raises ``ServiceError`` (on 403 the caller falls back to HEAD requests).
    """
    found: dict[str, int | None] = {}
    token: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            params["ContinuationToken"] = token
        page, _ = run(
            policy,
            lambda params=params: s3.list_objects_v2(**params),  # type: ignore[misc]
            endpoint=endpoint,
            operation="ListObjectsV2",
        )
        pages += 1
        for item in page.get("Contents") or ():
            if item["Key"] in wanted:
                found[item["Key"]] = item.get("Size")
        previous = token
        token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        # An S3-compatible store that repeats its token would otherwise be listed forever.
        if not token or token == previous:
            return found, pages


def existing(
    s3: Any, bucket: str, keys: Collection[str], *, endpoint: str | None, policy: RetryPolicy
) -> dict[str, int | None]:
    """``{key: size}`` of the ``keys`` that exist, one ``HeadObject`` each."""
    found: dict[str, int | None] = {}
    for key in keys:
        there, size = head(s3, bucket, key, endpoint=endpoint, policy=policy)
        if there:
            found[key] = size
    return found
