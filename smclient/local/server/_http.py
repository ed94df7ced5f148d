"""The loopback HTTP server: routes, request parsing and response encoding of the
SageMaker runtime (rest-json). Every response carries ``x-amzn-RequestId``; error bodies
are described in ``_wire.py``. What an endpoint does is behind the
:class:`~smclient.local.server._wire.Application` protocol (see ``smclient/local/_endpoint.py``).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import re
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from . import _eventstream
from ._wire import (
    ENDPOINT_NAME,
    MAX_PAYLOAD_BYTES,
    Application,
    InvocationResult,
    ServiceError,
    StreamFaults,
    StreamResult,
    check_member,
    parse_invocation,
)

__all__ = ["LoopbackServer"]

_log = logging.getLogger("smclient.local")

# Bodies above the limit are still read (so the client sees the 400, not a reset) up to
# this size; beyond it the connection is closed after the answer.
_DRAIN_LIMIT = 64 * 1024 * 1024

_ROUTE = re.compile(
    r"/endpoints/(?P<name>[^/]+)/(?P<action>invocations|invocations-response-stream|"
    r"async-invocations)"
)


def _header_value(value: str) -> str:
    # A handler's value must not be able to inject headers.
    return value.replace("\r", " ").replace("\n", " ")


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "smclient-local"
    default_request_version = "HTTP/1.1"  # so even a garbled request gets headers
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    # Headers and body go out in separate writes: with Nagle's algorithm the body would
    # wait for the client's delayed ACK (about 40 ms per request).
    disable_nagle_algorithm = True
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Malformed request lines and headers: a JSON error, never an HTML page.
        self.close_connection = True
        if code == 501:  # an HTTP method no route takes
            kind, code = "UnknownOperationException", 404
        else:
            kind = "ValidationError" if code < 500 else "InternalFailure"
        self._send_error(ServiceError(kind, code, message or ""), str(uuid.uuid4()))

    # -- plumbing ----------------------------------------------------------------------

    def _send(self, status: int, headers: Mapping[str, str], body: bytes, request_id: str) -> None:
        self.send_response(status)
        self.send_header("x-amzn-RequestId", request_id)
        for name, value in headers.items():
            self.send_header(name, _header_value(value))
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(self, error: ServiceError, request_id: str) -> None:
        payload: dict[str, object] = {"message": error.message, **error.fields}
        headers = {"x-amzn-ErrorType": error.code, "Content-Type": "application/json"}
        self._send(error.status, headers, json.dumps(payload).encode(), request_id)

    def _read_body(self) -> bytes:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._read_chunked()  # a client streaming a body of unknown length
            return b""
        try:
            length = int(length_header)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise ServiceError.validation("Invalid Content-Length header.") from None
        if length > _DRAIN_LIMIT:
            self.close_connection = True
        elif length > MAX_PAYLOAD_BYTES:
            while length > 0:  # drain so the client reads our answer, not a reset
                chunk = self.rfile.read(min(length, 1 << 20))
                if not chunk:
                    break
                length -= len(chunk)
        else:
            body = self.rfile.read(length)
            if len(body) == length:
                return body
            self.close_connection = True
            raise ServiceError.validation("Request body shorter than its Content-Length.")
        raise ServiceError.validation(
            f"Request payload exceeds the maximum size of {MAX_PAYLOAD_BYTES} bytes."
        )

    def _read_chunked(self) -> bytes:
        body = bytearray()
        oversized = False
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
                if size < 0:
                    raise ValueError
            except ValueError:
                self.close_connection = True
                raise ServiceError.validation("Malformed chunked request body.") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            if len(body) + size > _DRAIN_LIMIT:
                self.close_connection = True
                oversized = True
                break
            data = self.rfile.read(size)
            self.rfile.readline(8)  # the CRLF after the chunk
            if len(data) != size:
                self.close_connection = True
                raise ServiceError.validation("Truncated chunked request body.")
            if oversized or len(body) + size > MAX_PAYLOAD_BYTES:
                oversized = True
                body.clear()
            else:
                body += data
        if oversized:
            raise ServiceError.validation(
                f"Request payload exceeds the maximum size of {MAX_PAYLOAD_BYTES} bytes."
            )
        return bytes(body)

    def _handle(self, method: str) -> None:
        request_id = str(uuid.uuid4())
        app = self.server.app
        try:
            path = urlsplit(self.path).path
            if method == "GET" and path == "/ping":
                self._send(200, {}, b"", request_id)
                return
            if method == "GET" and path == "/_smclient/status":
                body = json.dumps(app.status(), sort_keys=True).encode()
                self._send(200, {"Content-Type": "application/json"}, body, request_id)
                return
            match = _ROUTE.fullmatch(path)
            if method != "POST" or match is None:
                self._read_body()
                raise ServiceError("UnknownOperationException", 404, "Unknown operation.")
            body = self._read_body()
            name = unquote(match["name"])
            check_member(name, "endpointName", max_len=63, pattern=ENDPOINT_NAME)
            if match["action"] == "async-invocations":
                headers = {k.lower(): v for k, v in self.headers.items()}
                accepted = app.invoke_async(name, headers)
                out = {"X-Amzn-SageMaker-OutputLocation": accepted.output_location}
                if accepted.failure_location:
                    out["X-Amzn-SageMaker-FailureLocation"] = accepted.failure_location
                out["Content-Type"] = "application/json"
                data = json.dumps({"InferenceId": accepted.inference_id}).encode()
                self._send(202, out, data, request_id)
                return
            streaming = match["action"] == "invocations-response-stream"
            request = parse_invocation(name, body, request_id, self.headers, streaming=streaming)
            if streaming:
                self._send_stream(app.invoke_stream(request), request_id)
            else:
                self._send_result(app.invoke(request), request_id)
        except ServiceError as error:
            self._send_error(error, request_id)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            _log.exception("local endpoint: internal failure (request %s)", request_id)
            failure = ServiceError("InternalFailure", 500, "An internal error occurred.")
            with contextlib.suppress(OSError):
                self._send_error(failure, request_id)

    def _send_result(self, result: InvocationResult, request_id: str) -> None:
        headers = {
            "Content-Type": result.content_type,
            "x-Amzn-Invoked-Production-Variant": result.variant,
        }
        if result.custom_attributes is not None:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = result.custom_attributes
        if result.new_session_id is not None:
            headers["X-Amzn-SageMaker-New-Session-Id"] = result.new_session_id
        if result.closed_session_id is not None:
            headers["X-Amzn-SageMaker-Closed-Session-Id"] = result.closed_session_id
        self._send(200, headers, result.body, request_id)

    def _send_stream(self, result: StreamResult, request_id: str) -> None:
        # Chunked transfer encoding: with a Content-Length botocore would wait for the
        # whole body before yielding the first event.
        faults = result.faults or StreamFaults()
        if faults.stall_before_response:
            faults.stall(self.server.aborting)
        self.send_response(200)
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Type", _eventstream.CONTENT_TYPE)
        self.send_header("X-Amzn-SageMaker-Content-Type", _header_value(result.content_type))
        self.send_header("x-Amzn-Invoked-Production-Variant", _header_value(result.variant))
        if result.custom_attributes is not None:
            self.send_header(
                "X-Amzn-SageMaker-Custom-Attributes", _header_value(result.custom_attributes)
            )
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        try:
            for event in result.events:
                if sent == faults.stall_after_events:
                    faults.stall(self.server.aborting)
                if faults.cut_after_events is not None and sent >= faults.cut_after_events:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                failure_at = faults.internal_failure_after_events
                if failure_at is not None and sent >= failure_at:
                    failure = _eventstream.internal_stream_failure("Injected stream failure.")
                    self.wfile.write(b"%X\r\n%s\r\n" % (len(failure), failure))
                    break
                self.wfile.write(b"%X\r\n%s\r\n" % (len(event), event))
                sent += 1
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        except Exception:
            # Headers are out: the failure can only be told as an event.
            _log.exception("local endpoint: stream failed (request %s)", request_id)
            event = _eventstream.internal_stream_failure("An internal error occurred.")
            self.wfile.write(b"%X\r\n%s\r\n" % (len(event), event))
        finally:
            close = getattr(result.events, "close", None)
            if close is not None:
                close()
        self.wfile.write(b"0\r\n\r\n")


class _HTTPServer(http.server.HTTPServer):
    """An HTTPServer with one tracked thread per connection, so that shutdown can close
    every connection (idle keep-alive ones included) and join every thread.

    The threads are daemons all the same: a server that is never closed, or a handler
    stuck past the join deadline, must not keep the process alive at exit."""

    daemon_threads = True
    # socketserver's default backlog of 5 resets connections under a burst of clients.
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], app: Application) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._connections: set[socket.socket] = set()
        self._closing = False
        # Where HTTP/2 connections go (the bidirectional server), when there is one.
        self.h2_handoff: Callable[[socket.socket], None] | None = None
        # Set at shutdown: wakes injected stream stalls (StreamFaults) at once.
        self.aborting = threading.Event()
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can take seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"smclient-local-conn-{client_address[1]}",
            daemon=True,
        )
        with self._lock:
            if self._closing:
                self.shutdown_request(request)
                return
            self._threads.add(thread)
            self._connections.add(request)
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        if self.h2_handoff is not None and self._hand_off_h2(request):
            with self._lock:
                self._connections.discard(request)
                self._threads.discard(threading.current_thread())
            return
        try:
            self.finish_request(request, client_address)
        except Exception:  # pragma: no cover - the handler catches its own errors
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._connections.discard(request)
                self._threads.discard(threading.current_thread())

    def _hand_off_h2(self, request: socket.socket) -> bool:
        """A client speaking HTTP/2 with prior knowledge (``PRI * HTTP/2.0``: bidirectional
        streams) is handed to ``h2_handoff`` on a duplicate of its socket."""
        assert self.h2_handoff is not None
        try:
            request.settimeout(_RequestHandler.timeout)
            first = request.recv(3, socket.MSG_PEEK | socket.MSG_WAITALL)
            request.settimeout(None)
        except OSError:
            return False
        if first != b"PRI":  # no HTTP/1.1 method starts so
            return False
        self.h2_handoff(request.dup())
        request.close()  # the duplicate keeps the connection open
        return True

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("local endpoint: connection error from %s", client_address, exc_info=True)

    def cut_all(self) -> None:
        """Refuses new connections and shuts down every open one (idle keep-alive ones
        return from their read at once)."""
        self.aborting.set()
        with self._lock:
            self._closing = True
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def join_all(self, timeout: float) -> list[str]:
        """Joins the connection threads; returns names of those still running."""
        with self._lock:
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in threads if t.is_alive()]


def connect_host(bound: str) -> str:
    """The address a local client connects to for a server bound to ``bound``: itself,
    or loopback for the wildcard ``0.0.0.0`` / ``""``."""
    return "127.0.0.1" if bound in ("", "0.0.0.0") else bound


class LoopbackServer:
    """Serves an :class:`Application` on ``host``:``port`` (default 127.0.0.1, a free port)."""

    def __init__(
        self,
        app: Application,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        h2_handoff: Callable[[socket.socket], None] | None = None,
    ) -> None:
        self._httpd = _HTTPServer((host, port), app)
        self._httpd.h2_handoff = h2_handoff
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self, timeout: float = 5.0) -> None:
        """Starts serving and waits (up to ``timeout`` seconds) until ``/ping`` answers."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"smclient-local-server-{self.port}",
            daemon=True,  # an endpoint never closed must not hold the process at exit
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(self._ping_address(), timeout=1.0) as s:
                    s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(12).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise TimeoutError(f"local endpoint did not start within {timeout} s")
            time.sleep(0.01)

    def _ping_address(self) -> tuple[str, int]:
        # The readiness check goes to the address actually bound (e.g. 127.0.0.2); a
        # wildcard bind is reached on loopback.
        return connect_host(str(self._httpd.server_address[0])), self.port

    def stop(self, timeout: float = 10.0) -> None:
        """Stops accepting and cuts every connection, without waiting for the requests
        in progress (wake what they wait for, then :meth:`close`)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout)
            self._thread = None
        self._httpd.cut_all()

    def close(self, timeout: float = 10.0) -> list[str]:
        """:meth:`stop`, then joins all threads (up to ``timeout`` seconds) and closes the
        socket; returns the names of threads left running."""
        self.stop(timeout)
        leftovers = self._httpd.join_all(timeout)
        self._httpd.server_close()
        return leftovers
