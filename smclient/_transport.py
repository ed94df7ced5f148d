"""Transports of the runtime operations, and the choice between them for each call.

- :class:`Boto3Transport`: the boto3 client's method - every botocore hook sees the call.
- :class:`smclient._fasthttp.FastTransport`: signed HTTP without botocore's client machinery.

How a call picks one (``ClientConfig.transport``, default ``"auto"``; the environment
variable ``SMCLIENT_TRANSPORT`` overrides ``"auto"``):

- ``"boto3"``: always the boto3 client. ``"fast"``: always the fast transport.
- ``"auto"``: the fast transport, unless something would be bypassed or is not supported -
  then the boto3 client, decided again on every call (cheaply: the answer is cached until a
  handler is registered or unregistered on the client):

  * an event handler on the runtime client (or its session) from outside botocore/boto3 for
    the operation's events: botocore's ``Stubber``, tracing, request logging...;
  * moto's ``mock_aws`` active (moto's handler is registered at import, enabled by the mock);
  * ``BaseClient._make_api_call`` patched (wrapt-based instrumentations: X-Ray, OpenTelemetry);
  * a proxy configured for the endpoint's host (``HTTPS_PROXY`` / ``HTTP_PROXY``, not
    excluded by ``NO_PROXY``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Protocol

from ._errors import SMClientError, TransportError
from ._request import ASYNC, INVOKE, STREAM, AsyncResponse, InvokeResponse, Request, StreamResponse

__all__ = ["TRANSPORTS", "Boto3Transport", "HookWatch", "Transport", "transport_setting"]

TRANSPORTS = ("auto", "fast", "boto3")

# Every event botocore emits while making one call of a runtime operation.
_EVENTS = (
    "provide-client-params",
    "before-parameter-build",
    "before-call",
    "request-created",
    "choose-signer",
    "before-sign",
    "before-send",
    "needs-retry",
    "response-received",
    "before-parse",
    "after-call",
    "after-call-error",
)
_OPERATIONS = (INVOKE, STREAM, ASYNC)


class Transport(Protocol):
    """Sends one request; raises botocore exceptions (translated by the retry loop)."""

    name: str

    def send(self, request: Request) -> InvokeResponse | StreamResponse | AsyncResponse: ...


def transport_setting(configured: str) -> str:
    """The effective choice: ``configured``, or ``SMCLIENT_TRANSPORT`` when it is ``auto``."""
    if configured != "auto":
        return configured
    value = os.environ.get("SMCLIENT_TRANSPORT", "auto").strip().lower() or "auto"
    if value not in TRANSPORTS:
        from ._errors import ConfigurationError

        raise ConfigurationError(
            f"SMCLIENT_TRANSPORT={value!r} is not one of {', '.join(TRANSPORTS)}"
        )
    return value


class Boto3Transport:
    """The boto3 client's methods."""

    name = "boto3"

    def __init__(self, client: Any) -> None:
        self._client = client

    def send(self, request: Request) -> InvokeResponse | StreamResponse | AsyncResponse:
        params = request.boto3_params()
        if request.operation == INVOKE:
            response = self._client.invoke_endpoint(**params)
            # Read inside the attempt: a timeout while reading is an attempt's failure.
            return InvokeResponse.from_boto3(response, response["Body"].read())
        if request.operation == ASYNC:
            try:
                answer = self._client.invoke_endpoint_async(**params)
            except (AttributeError, TypeError) as exc:
                # botocore's JSON parser assumes an object: a 2xx whose body is a list, a
                # string or a number fails inside it with a plain AttributeError. The retry
                # loop stamps the attempt number on the TransportError (not retried).
                raise TransportError(
                    f"the answer could not be parsed: {exc}",
                    endpoint=request.endpoint,
                    operation=ASYNC,
                ) from exc
            return AsyncResponse.from_boto3(answer)
        response = self._client.invoke_endpoint_with_response_stream(**params)
        body = response["Body"]
        # The raw HTTP body behind botocore's EventStream: smclient decodes the frames itself
        # (botocore's iterator drops ModelStreamError's ErrorCode), see _streaming.
        raw = raw_http_body(body)
        return StreamResponse(
            content_type=response.get("ContentType"),
            invoked_production_variant=response.get("InvokedProductionVariant"),
            custom_attributes=response.get("CustomAttributes"),
            request_id=(response.get("ResponseMetadata") or {}).get("RequestId"),
            chunks=_whole(raw),
            close=raw.close,
        )


def _whole(raw: Any) -> Iterator[bytes]:
    """``raw.stream()``, raising urllib3's ``IncompleteRead`` if the connection closed short
    of the Content-Length: botocore turns urllib3's own check off
    (``enforce_content_length=False``), which would end a cut stream silently."""
    yield from raw.stream()
    remaining = getattr(raw, "length_remaining", None)
    if remaining:
        import urllib3.exceptions

        raise urllib3.exceptions.IncompleteRead(getattr(raw, "_fp_bytes_read", 0), remaining)


def raw_http_body(body: Any) -> Any:
    """The raw HTTP body (a urllib3 response with ``stream()``) behind botocore's
    ``EventStream``: the one place that reads botocore's private ``_raw_stream``
    (``tests/test_botocore_contract.py`` fails loudly if a botocore release changes it).
    Raises :class:`~smclient.SMClientError` (after closing ``body``) if it is not there."""
    raw = getattr(body, "_raw_stream", None)
    if raw is None or not callable(getattr(raw, "stream", None)):
        close = getattr(body, "close", None)
        if close is not None:
            close()
        import botocore

        raise SMClientError(
            f"botocore {botocore.__version__}'s EventStream does not expose its raw body "
            "(_raw_stream); smclient needs it to read response streams - please report "
            "this botocore version"
        )
    return raw


def _module(handler: Any) -> str:
    target = getattr(handler, "func", handler)  # functools.partial
    return str(getattr(target, "__module__", None) or type(target).__module__ or "")


def _ours(module: str, handler: Any) -> bool:
    from ._errors import keep_model_error_fields  # smclient's own, on every runtime client

    if handler is keep_model_error_fields:
        return True
    return module.startswith(("botocore.", "boto3.")) and not module.startswith("botocore.stub")


def _patched_client_class(client: Any) -> bool:
    """``_make_api_call`` replaced or wrapped (wrapt's wrappers are not plain functions) by
    anything outside the botocore package (botocore's own decorator lives inside it)."""
    import types

    import botocore
    from botocore.client import BaseClient

    method = BaseClient.__dict__.get("_make_api_call")
    home = os.path.dirname(botocore.__file__)
    if not isinstance(method, types.FunctionType):
        return True
    if not method.__code__.co_filename.startswith(home):
        return True
    return type(client).__dict__.get("_make_api_call", method) is not method


class HookWatch:
    """Whether a call on ``client`` must go through botocore (see the module docstring).

    Cheap per call: handler lists are read again only when botocore replaced its lookup
    cache (it does on every register / unregister); moto's handler is asked whether a mock
    is active each time (a flag)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        events = client.meta.events
        self._emitter = getattr(events, "_emitter", events)
        self._seen: Any = None
        self._hooked = True
        self._moto: list[Any] = []

    def _scan(self) -> None:
        emitter = self._emitter
        cache = getattr(emitter, "_lookup_cache", None)
        handlers = getattr(emitter, "_handlers", None)
        if cache is None or handlers is None or not hasattr(handlers, "prefix_search"):
            self._seen, self._hooked, self._moto = None, True, []  # unknown botocore: be safe
            return
        hooked = _patched_client_class(self._client)
        moto: list[Any] = []
        service = self._client.meta.service_model.service_id.hyphenize()
        names = [f"before-endpoint-resolution.{service}"]
        names += [f"{event}.{service}.{op}" for event in _EVENTS for op in _OPERATIONS]
        for name in names:
            for handler in handlers.prefix_search(name):
                module = _module(handler)
                if module.startswith("moto."):
                    if all(h is not handler for h in moto):
                        moto.append(handler)
                elif not _ours(module, handler):
                    hooked = True
        self._seen, self._hooked, self._moto = cache, hooked, moto

    def hooked(self) -> bool:
        if getattr(self._emitter, "_lookup_cache", None) is not self._seen or self._seen is None:
            self._scan()
        if self._hooked:
            return True
        return any(getattr(h, "enabled", True) for h in self._moto)


def proxied(url: str) -> bool:
    """Whether the environment's proxy settings apply to ``url`` (fast path: not supported)."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")
