"""``ScriptedRuntime``: a loopback server that answers the runtime API from a script.

For tests of code that calls SageMaker: queue the answers (a model that is not ready
twice and then answers, a 503, a ModelError with its original status, a stall past
the read timeout, a dropped connection) and count what reached the server. It speaks
the wire protocol (rest-json errors with ``x-amzn-ErrorType``), so plain boto3 and
smclient parse its answers exactly as the service's.
"""

from __future__ import annotations

import collections
import json
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import attrs
from typing_extensions import Self

if TYPE_CHECKING:
    from .._endpoint import Endpoint

__all__ = ["RecordedRequest", "Reply", "ScriptedRuntime"]


@attrs.frozen
class Reply:
    """One scripted answer. Build with :meth:`ok`, :meth:`error`, :meth:`model_not_ready`,
    :meth:`model_error`, :meth:`stall` or :meth:`drop`.

    .. versionadded:: 0.1.0
    """

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    action: str = "answer"  # "answer", "stall" (never answer until closed) or "drop"

    @classmethod
    def ok(
        cls,
        body: bytes | str = b"{}",
        *,
        content_type: str = "application/json",
        variant: str = "AllTraffic",
        headers: dict[str, str] | None = None,
    ) -> Self:
        """A 200 answer with ``body`` (``str`` sent as UTF-8; default ``b"{}"``), its
        ``Content-Type`` (default ``application/json``), the invoked production ``variant``
        (default ``AllTraffic``) and any extra ``headers``."""
        data = body.encode() if isinstance(body, str) else body
        extra = {"Content-Type": content_type, "x-Amzn-Invoked-Production-Variant": variant}
        extra.update(headers or {})
        return cls(200, data, tuple(extra.items()))

    @classmethod
    def error(cls, code: str, status: int, message: str = "", **fields: Any) -> Self:
        """A service error as SageMaker sends it: HTTP ``status``, ``x-amzn-ErrorType: code``
        and a JSON body ``{"message": message or code, **fields}``."""
        body = json.dumps({"message": message or code, **fields}).encode()
        return cls(
            status,
            body,
            (("x-amzn-ErrorType", code), ("Content-Type", "application/json")),
        )

    @classmethod
    def model_not_ready(cls, target_model: str = "model") -> Self:
        """A 429 ``ModelNotReadyException`` for ``target_model`` (retried by default)."""
        return cls.error("ModelNotReadyException", 429, f"Model {target_model} is not ready.")

    @classmethod
    def model_error(
        cls, original_status: int = 500, original_message: str = "model failed"
    ) -> Self:
        """A 424 ``ModelError``: the container answered ``original_status`` (default 500)
        with ``original_message``; the body carries both and a ``LogStreamArn``."""
        return cls.error(
            "ModelError",
            424,
            f"Received server error ({original_status}) from primary with message "
            f'"{original_message}".',
            OriginalStatusCode=original_status,
            OriginalMessage=original_message,
            LogStreamArn="arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/x",
        )

    @classmethod
    def stall(cls) -> Self:
        """Read the request and never answer (until the server closes): a read timeout."""
        return cls(action="stall")

    @classmethod
    def drop(cls) -> Self:
        """Read the request and close the connection without an answer."""
        return cls(action="drop")


@attrs.frozen
class RecordedRequest:
    """A request that reached the server: method, path, headers (lower-case names), body.

    .. versionadded:: 0.1.0
    """

    method: str
    path: str
    headers: dict[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)


class ScriptedRuntime:
    """A loopback HTTP server on 127.0.0.1 answering queued :class:`Reply` values in order;
    when the queue is empty it answers ``default`` (an echo of the body when ``None``).

    Use as a context manager; ``url`` is its address, ``requests`` what reached it,
    ``endpoint(name)`` a ready :class:`smclient.Endpoint` pointed at it.

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, default: Reply | None = None) -> None:
        self.requests: list[RecordedRequest] = []
        self._replies: collections.deque[Reply] = collections.deque()
        self._default = default
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def queue(self, *replies: Reply) -> None:
        """Append ``replies`` to the queue; each request takes the next one, in order."""
        with self._lock:
            self._replies.extend(replies)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running server; ``RuntimeError`` outside the
        ``with`` block."""
        if self._server is None:
            raise RuntimeError("ScriptedRuntime is not started: use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def endpoint(self, name: str = "scripted", **kwargs: Any) -> Endpoint:
        """An ``Endpoint`` for this server (unsigned requests; extra kwargs passed on)."""
        from .. import ClientConfig, Endpoint

        kwargs.setdefault("config", ClientConfig(sign_requests=False))
        kwargs.setdefault("region", "us-east-1")
        return Endpoint(name, endpoint_url=self.url, **kwargs)

    def _next(self, body: bytes) -> Reply:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
        return self._default or Reply.ok(body, content_type="application/octet-stream")

    def __enter__(self) -> Self:
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in separate writes: without NODELAY, Nagle and
                # delayed ACKs add ~40 ms to every keep-alive request.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with runtime._lock:
                    runtime.requests.append(RecordedRequest("POST", self.path, headers, body))
                reply = runtime._next(body)
                if reply.action == "stall":
                    runtime._closing.wait(30.0)  # bounded: the client's read timeout fires first
                    self.close_connection = True
                    return
                if reply.action == "drop":
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default 5 stalls bursts of concurrent connects
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
