"""Building the bidirectional-stream request, without I/O: where it goes, its headers,
and the checks made before anything is sent (patterns and limits from the service model,
``sagemaker-runtime-http2`` 2025-10-01; protocol.md §8)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import attrs

from .._errors import ConfigurationError, InvalidInputError

__all__ = ["DEFAULT_PORT", "Target", "build_headers", "resolve_target"]

# Without the port the connection hangs (protocol.md §8): the service listens on 8443 only.
DEFAULT_PORT = 8443
PATH_SUFFIX = "invocations-bidirectional-stream"

_VARIANT = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_INVOCATION_PATH = re.compile(r"[A-Za-z0-9\-._]+(?:/[A-Za-z0-9\-._]+)*")
_QUERY_PAIR = r"[a-zA-Z0-9][A-Za-z0-9_-]*=(?:[A-Za-z0-9._~\-]|%[0-9A-Fa-f]{2})+"
_QUERY = re.compile(rf"{_QUERY_PAIR}(?:&{_QUERY_PAIR})*")
MAX_VARIANT = 63
MAX_INVOCATION_PATH = 100
MAX_QUERY_STRING = 2048


@attrs.frozen
class Target:
    """Where a stream goes: ``scheme`` (``https`` or ``http`` for cleartext h2c),
    ``host``, ``port``, and the request ``path``."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def authority(self) -> str:
        """``host[:port]`` as sent in ``:authority`` and signed as ``host``."""
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"


def _dns_suffix(region: str) -> str:
    """The partition's DNS suffix for ``region``, from botocore's bundled partition data."""
    from botocore.loaders import create_loader

    data = create_loader().load_data("partitions")
    for partition in data["partitions"]:
        if region in partition.get("regions", {}) or re.fullmatch(partition["regionRegex"], region):
            return str(partition["outputs"]["dnsSuffix"])
    return "amazonaws.com"


def resolve_target(
    endpoint_name: str, *, region: str | None, endpoint_url: str | None, fips: bool = False
) -> Target:
    """The stream's URL: ``endpoint_url`` when given (its port, else 8443 for https),
    else ``https://runtime[-fips].sagemaker.{region}.{dnsSuffix}:8443``."""
    path_tail = f"/endpoints/{endpoint_name}/{PATH_SUFFIX}"
    if endpoint_url:
        if fips:
            raise InvalidInputError(
                "fips", "cannot be combined with endpoint_url", limit="give one or the other"
            )
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInputError(
                "endpoint_url",
                f"{endpoint_url!r} is not an http(s) URL",
                limit="https://host[:port] (TLS) or http://host:port (cleartext HTTP/2)",
            )
        default = DEFAULT_PORT if parts.scheme == "https" else 80
        prefix = parts.path.rstrip("/")
        return Target(parts.scheme, parts.hostname, parts.port or default, prefix + path_tail)
    if not region:
        raise ConfigurationError(
            "No AWS region configured: pass region=... to Endpoint or set AWS_DEFAULT_REGION."
        )
    service = "runtime-fips.sagemaker" if fips else "runtime.sagemaker"
    return Target("https", f"{service}.{region}.{_dns_suffix(region)}", DEFAULT_PORT, path_tail)


def _checked(
    field: str, value: str | None, pattern: re.Pattern[str], maximum: int, what: str
) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidInputError(field, f"expected a string, got {type(value).__name__}")
    if not 1 <= len(value) <= maximum:
        raise InvalidInputError(
            field, f"length {len(value)} is out of range", limit=f"1-{maximum} characters"
        )
    if not pattern.fullmatch(value):
        raise InvalidInputError(field, f"{value[:80]!r} is not valid", limit=what)


def build_headers(
    *,
    target_variant: str | None = None,
    model_invocation_path: str | None = None,
    model_query_string: str | None = None,
) -> list[tuple[str, str]]:
    """The request's own headers, every value checked before anything is sent."""
    _checked(
        "target_variant",
        target_variant,
        _VARIANT,
        MAX_VARIANT,
        "letters, digits and inner hyphens",
    )
    if isinstance(model_invocation_path, str) and model_invocation_path.startswith("/"):
        raise InvalidInputError(
            "model_invocation_path",
            f"{model_invocation_path[:80]!r} starts with '/'",
            limit="a relative path such as 'v1/stream'",
        )
    _checked(
        "model_invocation_path",
        model_invocation_path,
        _INVOCATION_PATH,
        MAX_INVOCATION_PATH,
        "segments of letters, digits, '-', '.', '_' separated by '/', no leading '/'",
    )
    _checked(
        "model_query_string",
        model_query_string,
        _QUERY,
        MAX_QUERY_STRING,
        "key=value pairs joined by '&': keys of letters, digits, '_', '-'; values of "
        "unreserved characters or %XX escapes (URL-encode the rest)",
    )
    headers = [("content-type", "application/vnd.amazon.eventstream")]
    for name, value in (
        ("x-amzn-sagemaker-target-variant", target_variant),
        ("x-amzn-sagemaker-model-invocation-path", model_invocation_path),
        ("x-amzn-sagemaker-model-query-string", model_query_string),
    ):
        if value is not None:
            headers.append((name, value))
    return headers
