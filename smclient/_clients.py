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

import math
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    from ._transport import Transport

__all__ = ["ClientConfig", "ClientFactory", "check_config", "check_url"]


def _seconds(name: str, value: object) -> None:
    from ._errors import InvalidInputError

    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(
            name, f"expected a number of seconds, got {type(value).__name__} {value!r}"
        )
    if not math.isfinite(value) or value <= 0:
        raise InvalidInputError(name, f"got {value}", limit="seconds, finite and > 0")


@attrs.frozen
class ClientConfig:
    """Settings of the boto3 clients an ``Endpoint`` uses.

    ``read_timeout`` (seconds, default 70): SageMaker holds a call up to 60 s; the
    guidance for multi-model endpoints is 70 s. ``connect_timeout`` (seconds,
    default 10). ``max_pool_connections`` (default 50): connections kept per client,
    so threads sharing an ``Endpoint`` do not queue for a socket. ``sign_requests``
    (default ``True``): ``False`` sends unsigned requests (local endpoints, no
    credentials needed). ``user_agent_extra`` is appended to the User-Agent.
    ``transport`` (default ``"auto"``) picks how the runtime calls are sent: ``"fast"``
    (smclient's signed HTTP transport), ``"boto3"`` (the boto3 client) or ``"auto"`` (fast,
    unless moto, a ``Stubber``, an event handler or a proxy needs the boto3 client; the
    ``SMCLIENT_TRANSPORT`` environment variable overrides ``"auto"``) - see docs/transport.md.

    Every value is checked at construction (:class:`InvalidInputError`).

    .. versionadded:: 0.1.0
    .. versionadded:: 0.2.0 ``transport``
    """

    read_timeout: float = 70.0
    connect_timeout: float = 10.0
    max_pool_connections: int = 50
    sign_requests: bool = True
    user_agent_extra: str | None = None
    transport: Literal["auto", "fast", "boto3"] = "auto"

    def __attrs_post_init__(self) -> None:
        from ._errors import InvalidInputError
        from ._transport import TRANSPORTS

        _seconds("read_timeout", self.read_timeout)
        _seconds("connect_timeout", self.connect_timeout)
        pool = self.max_pool_connections
        if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
            raise InvalidInputError("max_pool_connections", f"got {pool!r}", limit="an int >= 1")
        if not isinstance(self.sign_requests, bool):
            raise InvalidInputError("sign_requests", f"got {self.sign_requests!r}", limit="a bool")
        extra = self.user_agent_extra
        if extra is not None and (
            not isinstance(extra, str) or not extra.isascii() or not extra.isprintable()
        ):
            raise InvalidInputError(
                "user_agent_extra", f"got {extra!r}", limit="printable ASCII text"
            )
        if self.transport not in TRANSPORTS:
            raise InvalidInputError(
                "transport", f"got {self.transport!r}", limit=" / ".join(TRANSPORTS)
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


# Every live factory, so that a forked child gets fresh locks: a lock another thread held at
# fork() stays held forever in the child (that thread does not exist there).
_FACTORIES: weakref.WeakSet[ClientFactory] = weakref.WeakSet()


def _new_locks_in_child() -> None:
    for factory in list(_FACTORIES):
        factory._lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork to survive
    os.register_at_fork(after_in_child=_new_locks_in_child)


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
        self._lock = threading.Lock()  # replaced in a forked child, see _new_locks_in_child
        self._pid = os.getpid()
        _FACTORIES.add(self)
        self._clients: dict[str, Any] = {}
        self._sessions: dict[str, Any] = {}
        self._transports: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """The boto3 client for ``service`` (``"sagemaker-runtime"``, ``"s3"``...)."""
        pid = os.getpid()
        if pid == self._pid:
            found = self._clients.get(service)
            if found is not None:
                return found
        with self._lock:
            if pid != self._pid:  # forked: the parent's connections are not ours
                self._clients, self._sessions, self._transports = {}, {}, {}
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
            transports, self._transports = self._transports, {}
            self._sessions = {}
        for transport in transports.values():
            close = getattr(transport, "close", None)
            if close is not None:
                close()
        for client in clients.values():
            client.close()

    def transport(self) -> Transport:
        """The transport for the next runtime call (chosen per call, see ``_transport``)."""
        from ._transport import transport_setting

        setting = transport_setting(self.config.transport)
        client = self.client("sagemaker-runtime")
        return self._choose(setting, client)

    def ready_transport(self) -> Transport | None:
        """:meth:`transport` if choosing it needs no I/O (client and transports already
        built in this process), else ``None`` (the asyncio API then builds in a thread)."""
        from ._transport import transport_setting

        setting = transport_setting(self.config.transport)
        client = self._clients.get("sagemaker-runtime")
        if client is None or os.getpid() != self._pid:
            return None
        transports = self._transports
        needed = {"boto3": ("boto3",), "fast": ("fast",)}.get(setting, ("watch", "fast"))
        for key in needed:
            found = transports.get(key)
            if found is None or found[0] is not client:
                return None
        return self._choose(setting, client)

    def _choose(self, setting: str, client: Any) -> Transport:
        transports = self._transports
        if setting == "auto":
            watch = transports.get("watch")
            if watch is None or watch[0] is not client:
                watch = self._cached("watch", client, lambda: _watch(client))
            if watch[1].hooked():
                setting = "boto3"
        if setting != "boto3":
            fast = transports.get("fast")
            if fast is None or fast[0] is not client:
                fast = self._cached("fast", client, lambda: self._fast(client))
            if fast[1] is not None:
                return fast[1]  # type: ignore[no-any-return]
            if self.config.transport == "fast":
                from ._errors import ConfigurationError

                raise ConfigurationError(
                    "transport='fast' cannot reach this endpoint through the configured "
                    "proxy: use transport='auto' or 'boto3'"
                )
        boto = transports.get("boto3")
        if boto is None or boto[0] is not client:
            from ._transport import Boto3Transport

            boto = self._cached("boto3", client, lambda: Boto3Transport(client))
        return boto[1]  # type: ignore[no-any-return]

    def _cached(self, key: str, client: Any, build: Any) -> tuple[Any, Any]:
        with self._lock:
            found = self._transports.get(key)
            if found is None or found[0] is not client:
                found = (client, build())
                self._transports[key] = found
            return found

    def _fast(self, client: Any) -> Any:
        """The fast transport for ``client``'s endpoint, or ``None`` where it cannot go."""
        from ._fasthttp import FastTransport, Signer, capture_template
        from ._transport import proxied

        # On a client of its own: the user's client may carry a Stubber or handlers that
        # would answer (or refuse) the probe when transport="fast" is forced.
        session = self._sessions["sagemaker-runtime"]  # the real client's: its credentials
        probe = self._build("sagemaker-runtime")
        self._sessions["sagemaker-runtime"] = session
        try:
            template = capture_template(probe)
        finally:
            probe.close()
        if proxied(f"{template.scheme}://{template.host}"):
            return None
        core = getattr(session, "_session", session)
        signer = None
        if self.config.sign_requests:
            signer = Signer(session.get_credentials(), client.meta.region_name)
        return FastTransport(
            template,
            signer=signer,
            ca_bundle=core.get_config_variable("ca_bundle") if core is not None else None,
            connect_timeout=self.config.connect_timeout,
            read_timeout=self.config.read_timeout,
            max_pool_connections=self.config.max_pool_connections,
        )

    def _build(self, service: str) -> Any:
        import boto3

        session: Any = self._session if self._session is not None else boto3.Session()
        self._sessions[service] = session  # its credentials sign the fast transport's requests
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


def _watch(client: Any) -> Any:
    from ._transport import HookWatch

    return HookWatch(client)


def check_config(config: object) -> ClientConfig:
    """``config`` if it is a :class:`ClientConfig`; a clear error for look-alikes."""
    from ._errors import ConfigurationError

    if config is None:
        return ClientConfig()
    if isinstance(config, ClientConfig):
        return config
    if type(config).__module__.startswith("botocore"):
        raise ConfigurationError(
            "config= takes a smclient.ClientConfig, not a botocore Config: smclient sets "
            "botocore's settings itself (retries pinned, timeouts). Use "
            "ClientConfig(read_timeout=..., connect_timeout=..., max_pool_connections=...)."
        )
    if isinstance(config, dict):
        raise ConfigurationError(
            "config= takes a smclient.ClientConfig, not a dict: use ClientConfig(**your_dict)"
        )
    raise ConfigurationError(f"config= takes a smclient.ClientConfig, got {type(config).__name__}")


def check_url(field: str, url: object) -> str | None:
    """``url`` if it is ``None`` or an absolute http(s) URL with a host."""
    from urllib.parse import urlsplit

    from ._errors import InvalidInputError

    if url is None:
        return None
    if not isinstance(url, str):
        raise InvalidInputError(field, f"expected a URL string, got {type(url).__name__}")
    limit = "an absolute http:// or https:// URL, for example https://runtime.example.com"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInputError(field, f"{url[:200]!r} is not a URL ({exc})", limit=limit) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise InvalidInputError(field, f"{url[:200]!r} is not a usable URL", limit=limit)
    if parts.query or parts.fragment or any(c.isspace() for c in url):
        raise InvalidInputError(field, f"{url[:200]!r} has a query, fragment or space", limit=limit)
    from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

    if not (is_valid_endpoint_url(url) or is_valid_ipv6_endpoint_url(url)):  # boto3's own rule
        raise InvalidInputError(field, f"{url[:200]!r} has an invalid host name", limit=limit)
    return url
