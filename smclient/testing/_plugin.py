"""The pytest plugin registered by smclient (entry point ``pytest11``).

Fixtures import their heavy dependencies (the local endpoint, moto) lazily. Loading the
plugin imports the ``smclient`` package itself (about 100 ms, measured with
``python -X importtime``), but neither boto3, moto nor the local endpoint.

- ``smclient_local_endpoint``: factory ``(handler=None, **EndpointSpec fields) ->
  LocalEndpoint``, started; every endpoint it made is stopped when the test ends.
- ``smclient_local_runtime``: factory ``(*specs: EndpointSpec, **LocalRuntime options) ->
  LocalRuntime``, started and stopped the same way.
- ``smclient_moto_server``: an embedded moto server (S3/SNS/SQS/SageMaker over HTTP on
  127.0.0.1) for the test, with moto's state reset before and after;
  ``.endpoint_url``, ``.region``, ``.client(service)``.
- ``smclient_no_retry_waits``: retry policies retry without waiting during the test.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from smclient.local import EndpointSpec, LocalEndpoint, LocalRuntime

__all__ = [
    "smclient_local_endpoint",
    "smclient_local_runtime",
    "smclient_moto_server",
    "smclient_no_retry_waits",
]


@pytest.fixture
def smclient_local_runtime() -> Iterator[Callable[..., LocalRuntime]]:
    """Starts ``LocalRuntime(specs, **options)``; stops them all at teardown."""
    from smclient.local import LocalRuntime

    started: list[LocalRuntime] = []

    def factory(*specs: EndpointSpec, **options: Any) -> LocalRuntime:
        runtime = LocalRuntime(specs, **options)
        runtime.start()
        started.append(runtime)
        return runtime

    yield factory
    leftovers = [name for runtime in reversed(started) for name in runtime.close()]
    assert not leftovers, f"local runtime threads still running after shutdown: {leftovers}"


@pytest.fixture
def smclient_local_endpoint() -> Iterator[Callable[..., LocalEndpoint]]:
    """Starts ``LocalEndpoint(handler, **kwargs)``; stops them all at teardown."""
    from smclient.local import LocalEndpoint

    started: list[LocalEndpoint] = []

    def factory(handler: object | None = None, **kwargs: Any) -> LocalEndpoint:
        endpoint = LocalEndpoint(handler, **kwargs)
        endpoint.start()
        started.append(endpoint)
        return endpoint

    yield factory
    leftovers = [name for endpoint in reversed(started) for name in endpoint.close()]
    assert not leftovers, f"local endpoint threads still running after shutdown: {leftovers}"


@pytest.fixture
def smclient_moto_server() -> Iterator[Any]:
    """An embedded moto server on a free loopback port, stopped after the test."""
    from smclient.local import EmbeddedAWS

    with EmbeddedAWS() as aws:
        # moto keeps its backends per process: start from (and leave) a clean state.
        _reset_moto(aws.endpoint_url)
        try:
            yield aws
        finally:
            _reset_moto(aws.endpoint_url)


def _reset_moto(endpoint_url: str) -> None:
    import urllib.request

    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@pytest.fixture
def smclient_no_retry_waits() -> Iterator[None]:
    """Retry policies keep retrying but never sleep between attempts."""
    from smclient.testing import no_retry_waits

    with no_retry_waits():
        yield
