"""The client factory: the only place that creates boto3 clients.

Clients are built lazily on first use and cached per process, so that

- an ``Endpoint`` made before ``moto.mock_aws()`` starts is still served by the mock;
- an ``Endpoint`` pickles (the cache is dropped) and works in a worker process or
  after ``fork`` (a new process id builds new clients).

botocore's own retries are pinned to one attempt: smclient's :class:`RetryPolicy`
is the only retry loop (botocore's legacy mode would retry 429 five times and
standard mode three times on 5xx, multiplying our attempts).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import attrs

__all__ = ["ClientConfig", "ClientFactory"]


@attrs.frozen
class ClientConfig:
    """Settings of the boto3 clients an ``Endpoint`` uses.

    ``read_timeout`` (seconds, default 70): SageMaker holds a call up to 60 s; the
    guidance for multi-model endpoints is 70 s. ``connect_timeout`` (seconds,
    default 10). ``max_pool_connections`` (default 50): connections kept per client,
    so threads sharing an ``Endpoint`` do not queue for a socket. ``sign_requests``
    (default ``True``): ``False`` sends unsigned requests (local endpoints, no
    credentials needed). ``user_agent_extra`` is appended to the User-Agent.

    .. versionadded:: 0.1.0
    """

    read_timeout: float = 70.0
    connect_timeout: float = 10.0
    max_pool_connections: int = 50
    sign_requests: bool = True
    user_agent_extra: str | None = None

    def __attrs_post_init__(self) -> None:
        from ._errors import InvalidInputError

        for name in ("read_timeout", "connect_timeout"):
            if getattr(self, name) <= 0:
                raise InvalidInputError(name, f"got {getattr(self, name)}", limit="seconds, > 0")
        if self.max_pool_connections < 1:
            raise InvalidInputError(
                "max_pool_connections", f"got {self.max_pool_connections}", limit=">= 1"
            )

    def to_botocore(self) -> Any:
        """The ``botocore.config.Config`` these settings stand for."""
        import botocore
        from botocore.config import Config

        from . import __version__

        extra = f"smclient/{__version__}"
        if self.user_agent_extra:
            extra += f" {self.user_agent_extra}"
        kwargs: dict[str, Any] = {}
        if not self.sign_requests:
            kwargs["signature_version"] = botocore.UNSIGNED
        return Config(
            read_timeout=self.read_timeout,
            connect_timeout=self.connect_timeout,
            max_pool_connections=self.max_pool_connections,
            retries={"mode": "standard", "total_max_attempts": 1},
            user_agent_extra=extra,
            **kwargs,
        )


class ClientFactory:
    """Lazily builds and caches boto3 clients for one region / endpoint URL / config.

    Thread-safe. Pickles without its clients; a pickled ``boto3.Session`` is
    rebuilt from its profile name (explicit credentials are never pickled).
    """

    def __init__(
        self,
        *,
        region: str | None,
        endpoint_url: str | None,
        config: ClientConfig,
        boto3_session: Any | None = None,
        aws_endpoint_url: str | None = None,
    ) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self.aws_endpoint_url = aws_endpoint_url
        self.config = config
        self._session = boto3_session
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """The boto3 client for ``service`` (``"sagemaker-runtime"``, ``"s3"``...)."""
        pid = os.getpid()
        if pid == self._pid:
            found = self._clients.get(service)
            if found is not None:
                return found
        with self._lock:
            if pid != self._pid:  # forked: the parent's connections are not ours
                self._clients = {}
                self._pid = pid
            found = self._clients.get(service)
            if found is None:
                found = self._build(service)
                self._clients[service] = found
            return found

    def close(self) -> None:
        """Close the cached clients' connection pools; later calls build new clients."""
        with self._lock:
            clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()

    def _build(self, service: str) -> Any:
        import boto3

        session: Any = self._session if self._session is not None else boto3.Session()
        # The runtime has its own URL (a local endpoint, a VPC endpoint); S3, SQS, SNS and
        # the control plane share aws_endpoint_url (a moto server, an S3-compatible store).
        url = self.endpoint_url if service == "sagemaker-runtime" else self.aws_endpoint_url
        client = session.client(
            service,
            region_name=self.region,
            endpoint_url=url,
            config=self.config.to_botocore(),
        )
        if service == "sagemaker-runtime":  # a 424 without error type keeps its fields
            from ._errors import keep_model_error_fields

            client.meta.events.register("before-parse.sagemaker-runtime", keep_model_error_fields)
        return client

    def __getstate__(self) -> dict[str, Any]:
        profile = getattr(self._session, "profile_name", None) if self._session else None
        return {
            "region": self.region,
            "endpoint_url": self.endpoint_url,
            "aws_endpoint_url": self.aws_endpoint_url,
            "config": self.config,
            "profile": profile if profile != "default" else None,
            "had_session": self._session is not None,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        session = None
        if state["had_session"]:
            import boto3

            session = boto3.Session(profile_name=state["profile"], region_name=state["region"])
        self.__init__(  # type: ignore[misc]
            region=state["region"],
            endpoint_url=state["endpoint_url"],
            config=state["config"],
            boto3_session=session,
            aws_endpoint_url=state["aws_endpoint_url"],
        )
