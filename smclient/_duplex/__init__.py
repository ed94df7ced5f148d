"""Bidirectional streaming (``InvokeEndpointWithBidirectionalStream``, protocol.md §8).

Layers: ``_eventstream`` (message framing), ``_signing`` (SigV4 request and chained event
signatures), ``_request`` (URL and headers, checked before sending), ``_messages`` (parts,
splitting, reassembly) are sans-I/O; ``_stream`` is the asyncio HTTP/2 stream (``h2``) and
``_sync`` drives it from blocking code. ``settings_for`` is what the facades call.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from .._errors import ConfigurationError, ErrorContext, InvalidInputError
from ._async import AsyncDuplexStream, ReconnectEvent, ReconnectPolicy
from ._messages import DEFAULT_PART_SIZE, MAX_PART_SIZE, DuplexMessage
from ._request import build_headers, resolve_target
from ._signing import Credentials
from ._stream import StreamSettings
from ._sync import DuplexStream

__all__ = [
    "DEFAULT_PART_SIZE",
    "AsyncDuplexStream",
    "DuplexMessage",
    "DuplexStream",
    "ReconnectEvent",
    "ReconnectPolicy",
    "StreamSettings",
    "settings_for",
]

OPERATION = "InvokeEndpointWithBidirectionalStream"

# Public classes say smclient.Name (re-exported there lazily), whichever name is touched first.
for _cls in (AsyncDuplexStream, DuplexMessage, DuplexStream, ReconnectEvent, ReconnectPolicy):
    _cls.__module__ = "smclient"
del _cls


def _require_h2() -> None:
    try:
        import h2  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            "bidirectional streaming needs the 'duplex' extra: pip install 'smclient[duplex]'"
        ) from exc


def _credentials_from(session: Any) -> Credentials:
    """Frozen credentials from botocore's provider chain, asked once per stream (a
    refreshing provider refreshes here when its credentials are near expiry)."""
    found = session.get_credentials()
    if found is None:
        raise ConfigurationError(
            "No AWS credentials found. Configure credentials (environment, profile or role), "
            "pass boto3_session=... to Endpoint, or use ClientConfig(sign_requests=False) "
            "for a local endpoint."
        )
    frozen = found.get_frozen_credentials()
    return Credentials(frozen.access_key, frozen.secret_key, frozen.token)


def settings_for(
    *,
    endpoint_name: str,
    region: str | None,
    endpoint_url: str | None,
    boto3_session: Any | None,
    config: Any,
    target_variant: str | None,
    model_invocation_path: str | None,
    model_query_string: str | None,
    fips: bool,
    part_size: int,
    raw_parts: bool,
    read_timeout: float | None,
    close_timeout: float,
    wait_for_response: bool,
    max_message_bytes: int,
) -> StreamSettings:
    """Resolve and check everything a stream needs; nothing is sent."""
    _require_h2()
    headers = build_headers(
        target_variant=target_variant,
        model_invocation_path=model_invocation_path,
        model_query_string=model_query_string,
    )
    from .._clients import _seconds

    for field, size, top in (
        ("part_size", part_size, MAX_PART_SIZE),
        ("max_message_bytes", max_message_bytes, 2**62),
    ):
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= top:
            raise InvalidInputError(field, f"got {size!r}", limit=f"an int of 1-{top:,} bytes")
    _seconds("close_timeout", close_timeout)
    if read_timeout is not None:
        _seconds("read_timeout", read_timeout)
    import boto3

    session: Any = boto3_session if boto3_session is not None else boto3.Session()
    region = region or session.region_name
    target = resolve_target(endpoint_name, region=region, endpoint_url=endpoint_url, fips=fips)
    if config.sign_requests and not region:
        raise ConfigurationError(
            "No AWS region configured: pass region=... to Endpoint or set AWS_DEFAULT_REGION."
        )
    if config.sign_requests:
        _credentials_from(session)  # fail before connecting when there are none

    def credentials() -> Credentials | None:
        return _credentials_from(session) if config.sign_requests else None

    from .. import __version__

    agent = f"smclient/{__version__}" + (
        f" {config.user_agent_extra}" if config.user_agent_extra else ""
    )
    from .._transport import proxied

    if proxied(f"{target.scheme}://{target.host}"):
        raise ConfigurationError(
            f"a proxy is configured for {target.host} (HTTPS_PROXY / HTTP_PROXY), and "
            "bidirectional streams cannot go through proxies yet: add the host to NO_PROXY "
            "or connect directly"
        )
    context = None
    core = getattr(session, "_session", None)
    # botocore's own setting for a private CA: AWS_CA_BUNDLE or ca_bundle in the profile.
    bundle = core.get_config_variable("ca_bundle") if core is not None else None
    bundle = bundle or os.environ.get("AWS_CA_BUNDLE")
    if target.scheme == "https" and bundle:
        context = ssl.create_default_context(cafile=bundle)
    return StreamSettings(
        target=target,
        headers=tuple(headers),
        region=region or "us-east-1",
        credentials=credentials,
        ctx=ErrorContext(endpoint_name, OPERATION, None, 1),
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout if read_timeout is None else read_timeout,
        close_timeout=close_timeout,
        part_size=part_size,
        raw_parts=raw_parts,
        max_message_bytes=max_message_bytes,
        wait_for_response=wait_for_response,
        user_agent=agent,
        ssl_context=context,
    )
