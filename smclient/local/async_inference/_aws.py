"""Where the local endpoint's async engine reaches S3 and SNS.

:class:`EmbeddedAWS` runs moto's S3/SNS/SQS backends on a loopback port inside this
process (the default of a local async endpoint); :class:`AWSConnection` points at any
S3/SNS-compatible URL, or real AWS when the URL is ``None``.

moto is an optional dependency (``pip install 'smclient[local]'``) and is imported only
when an :class:`EmbeddedAWS` starts.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Any

import attrs
from typing_extensions import Self

__all__ = ["AWSConnection", "EmbeddedAWS"]

# moto accepts any credentials; these are fixed, fake and never leave the loopback.
_FAKE_KEY = "smclient-local"
_FAKE_SECRET = "smclient-local-secret"  # not a secret: moto's fake account


def _client_config() -> Any:
    from botocore.config import Config

    # Short timeouts: every call goes to a loopback server or is a small S3/SNS request;
    # botocore's own retries stay on (standard mode) because these calls are idempotent
    # writes/reads the engine makes for itself, not model invocations.
    return Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"mode": "standard", "max_attempts": 2},
        max_pool_connections=50,
    )


@attrs.frozen
class AWSConnection:
    """S3/SNS reached through boto3 at ``endpoint_url`` in ``region``.

    ``endpoint_url=None`` means real AWS; credentials then come from boto3's default
    chain (environment, profile, instance role). Any S3/SNS-compatible server works
    (a moto server, LocalStack...): give its URL, and credentials through the default
    chain (for example ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``).

    .. versionadded:: 0.1.0
    """

    endpoint_url: str | None
    region: str

    def client(self, service_name: str) -> Any:
        """A new boto3 client for ``service_name`` (``"s3"``, ``"sns"``, ``"sqs"``...).

        The caller owns it and should ``close()`` it when done.
        """
        import boto3

        session: Any = boto3.session.Session()
        return session.client(
            service_name,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            config=_client_config(),
        )


@attrs.define
class EmbeddedAWS:
    """moto's S3, SNS and SQS on ``127.0.0.1`` (a free port), inside this process.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. :attr:`endpoint_url`
    is where boto3 reaches it; :meth:`client` gives boto3 clients with fake static
    credentials pointed at it. :meth:`stop` closes the clients :meth:`client` handed
    out, ends every connection and joins every server thread (deadline ``stop_timeout``
    seconds, default 5), so nothing is left running and the port is released.

    moto keeps its data in process-wide backends: two ``EmbeddedAWS`` in one process
    (or one and ``moto.mock_aws``) see the same buckets and topics. Use unique names.

    Needs the ``smclient[local]`` extra (moto with its server).

    .. versionadded:: 0.1.0
    """

    region: str = "us-east-1"
    stop_timeout: float = 5.0
    _server: Any = attrs.field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = attrs.field(default=None, init=False, repr=False)
    _url: str | None = attrs.field(default=None, init=False)
    _clients: list[Any] = attrs.field(factory=list, init=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _session: Any = attrs.field(default=None, init=False, repr=False)

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``; raises ``RuntimeError`` before :meth:`start`."""
        if self._url is None:
            raise RuntimeError("EmbeddedAWS is not running: call start() or use it in a with block")
        return self._url

    @property
    def running(self) -> bool:
        """Whether the server is up."""
        return self._url is not None

    def start(self) -> Self:
        """Start the server (idempotent); returns ``self``."""
        with self._lock:
            if self._server is not None:
                return self
            server = _make_server()
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="smclient-embedded-aws",
                daemon=True,
            )
            thread.start()
            host, port = server.server_address[:2]
            self._server, self._thread = server, thread
            self._url = f"http://{host}:{port}"
            return self

    def stop(self) -> None:
        """Stop the server, close handed-out clients and join its threads (idempotent)."""
        with self._lock:
            server, thread, clients = self._server, self._thread, self._clients
            self._server, self._thread, self._url, self._clients = None, None, None, []
        for client in clients:
            client.close()
        if server is None:
            return
        deadline = time.monotonic() + self.stop_timeout
        server.shutdown()  # ends serve_forever within its poll interval
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        server.stop_connections(deadline)

    def client(self, service_name: str) -> Any:
        """A boto3 client for ``service_name`` pointed at this server (closed by :meth:`stop`)."""
        import boto3

        url = self.endpoint_url
        with self._lock:
            # One session per server: its loader caches service models, so later clients
            # take milliseconds instead of ~100 ms. Creating clients from one session is
            # not thread-safe, hence the lock.
            if self._session is None:
                self._session = boto3.session.Session()
            session: Any = self._session
            found = session.client(
                service_name,
                region_name=self.region,
                endpoint_url=url,
                aws_access_key_id=_FAKE_KEY,
                aws_secret_access_key=_FAKE_SECRET,
                config=_client_config(),
            )
            self._clients.append(found)
        return found

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _make_server() -> Any:
    """A werkzeug threaded server running moto's app on 127.0.0.1, port chosen by the OS.

    Not ``moto.server.ThreadedMotoServer``: its ``stop()`` leaves the listening socket
    open (a ResourceWarning) and cannot end handler threads blocked on idle keep-alive
    connections. This server tracks its connections and handler threads so ``stop``
    can end them and join them with a deadline.
    """
    try:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
    except ImportError as exc:
        raise ImportError(
            "EmbeddedAWS needs moto with its server: install the extra with "
            "pip install 'smclient[local]'"
        ) from exc

    class _QuietHandler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            return  # one line per S3/SNS call would drown the user's output

    class _Server(ThreadedWSGIServer):
        # server_close() must not join handler threads without a deadline; we join them.
        block_on_close = False

        def __init__(self) -> None:
            super().__init__(
                "127.0.0.1",
                0,
                DomainDispatcherApplication(create_backend_app),
                handler=_QuietHandler,
            )
            self._track_lock = threading.Lock()
            self._open: dict[socket.socket, threading.Thread] = {}

        def process_request(self, request: Any, client_address: Any) -> None:
            thread = threading.Thread(
                target=self.process_request_thread,
                args=(request, client_address),
                name="smclient-embedded-aws-conn",
                daemon=True,
            )
            with self._track_lock:
                self._open[request] = thread
            thread.start()

        def shutdown_request(self, request: Any) -> None:
            with self._track_lock:
                self._open.pop(request, None)
            super().shutdown_request(request)

        def stop_connections(self, deadline: float) -> None:
            self.server_close()  # the listening socket
            with self._track_lock:
                open_now = list(self._open.items())
            for sock, _ in open_now:
                # Wakes a handler blocked reading an idle keep-alive connection.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            for _, thread in open_now:
                thread.join(max(0.0, deadline - time.monotonic()))

    return _Server()
