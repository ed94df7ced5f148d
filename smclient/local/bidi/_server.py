"""A loopback server for ``invocations-bidirectional-stream`` over HTTP/2 (cleartext h2c
with prior knowledge, or TLS with ALPN ``h2``), hosting Python async handlers.

It plays the service's side of protocol.md §8: decodes (and, given credentials, verifies)
the signed events, hands the handler whole messages, frames the handler's replies as
``PayloadPart`` events, maps a handler's :class:`BidiModelError` (or any exception) to a
``ModelStreamError`` event, answers rejected streams with the service's error shapes, and
can cut connections older than ``max_connection_age`` seconds (30 minutes on SageMaker)
by its own ``clock`` so tests can reach that limit without waiting.

The server runs its own event loop in a daemon thread: ``with BidiServer(handler) as
server: Endpoint("x", endpoint_url=server.url, ...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import attrs
from typing_extensions import Self

from smclient import DuplexMessage

from ._frames import FrameBuffer, Joiner, decode_events, exception_event, payload_part, to_message
from ._verify import EventChain, SignatureError, verify_request

__all__ = ["BidiCall", "BidiModelError", "BidiRejection", "BidiServer", "BidiStreamFailure"]

_log = logging.getLogger("smclient.local")
_ROUTE = re.compile(r"/endpoints/(?P<name>[^/]+)/invocations-bidirectional-stream")
_CONTENT_TYPE = "application/vnd.amazon.eventstream"


class BidiModelError(Exception):
    """Raise from a handler to end the stream with a ``ModelStreamError`` event carrying
    ``error_code`` and ``message`` (as a container does by sending
    ``{"ModelStreamError": {...}}`` or closing its WebSocket).

    .. versionadded:: 0.2.0
    """

    def __init__(self, message: str, error_code: str = "ModelError") -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code


class BidiStreamFailure(Exception):
    """Raise from a handler to end the stream with an ``InternalStreamFailure`` event
    (the service's own failure during a stream).

    .. versionadded:: 0.2.0
    """


@attrs.frozen
class BidiRejection:
    """An error answer before the stream: ``status`` 400 (``InputValidationError``),
    424 (``ModelError``: the container refused, with ``original_status_code``), 500
    (``InternalServerError``) or 503 (``ServiceUnavailableError``).

    .. versionadded:: 0.2.0
    """

    status: int
    message: str = "rejected by the local endpoint"
    original_status_code: int | None = None

    @property
    def error_type(self) -> str:
        return {
            400: "InputValidationError",
            424: "ModelError",
            500: "InternalServerError",
            503: "ServiceUnavailableError",
        }.get(self.status, "InternalServerError")

    def body(self, endpoint: str) -> bytes:
        fields: dict[str, Any] = {"Message": self.message, "ErrorCode": self.error_type}
        if self.status == 424:
            fields["OriginalStatusCode"] = self.original_status_code or 500
            fields["OriginalMessage"] = self.message
            fields["LogStreamArn"] = (
                f"arn:aws:logs:local:000000000000:log-group:/aws/sagemaker/Endpoints/{endpoint}"
            )
        return json.dumps(fields).encode()


class BidiCall:
    """One stream as a handler sees it: ``async for message in call`` (whole
    :class:`~smclient.DuplexMessage` values) and ``await call.send(data)`` (``str`` as
    ``UTF8``, ``bytes`` as ``BINARY``, or a ``DuplexMessage``). Request details:
    ``endpoint_name``, ``target_variant``, ``invocation_path``, ``query_string``.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        endpoint_name: str,
        headers: Mapping[str, str],
        emit: Callable[[bytes], Awaitable[None]],
    ) -> None:
        self.endpoint_name = endpoint_name
        self.target_variant = headers.get("x-amzn-sagemaker-target-variant")
        self.invocation_path = headers.get("x-amzn-sagemaker-model-invocation-path")
        self.query_string = headers.get("x-amzn-sagemaker-model-query-string")
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._emit = emit
        self.messages_received = 0

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Any]:
        while True:
            item = await self._inbox.get()
            if item is None:
                return
            self.messages_received += 1
            yield item

    async def send(self, data: Any, *, complete: bool = True) -> None:
        """Send a message (or, with ``complete=False``, a ``PARTIAL`` part)."""
        if isinstance(data, DuplexMessage):
            await self._emit(payload_part(data.data, data.data_type, data.complete and complete))
        elif isinstance(data, str):
            await self._emit(payload_part(data.encode(), "UTF8", complete))
        else:
            await self._emit(payload_part(bytes(data), "BINARY", complete))


Handler = Callable[[BidiCall], Awaitable[None]]
"""A model: ``async def handler(call)``. An object handler may also have
``async def accept(call) -> BidiRejection | None``, awaited before the answer's headers
are sent (a rejection becomes the error answer, as a refused container WebSocket does)."""


class _Conn:
    """One HTTP/2 connection (the client opens one stream on it)."""

    def __init__(
        self,
        server: BidiServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        import h2.config
        import h2.connection

        self.server = server
        self.reader = reader
        self.writer = writer
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.opened = server.clock()
        self.streams: dict[int, _Stream] = {}
        self.window_open = asyncio.Event()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def cut(self) -> None:
        """Drop the TCP connection without a goodbye (what a 30-minute cap looks like)."""
        transport = self.writer.transport
        transport.abort()

    async def run(self) -> None:
        import h2.events
        import h2.exceptions

        self.h2.initiate_connection()
        self.flush()
        try:
            while True:
                data = await self.reader.read(256 * 1024)
                if not data:
                    break
                if self.server._aged(self):
                    self.cut()
                    break
                try:
                    events = self.h2.receive_data(data)
                except h2.exceptions.ProtocolError:
                    self.flush()
                    break
                for event in events:
                    if isinstance(event, h2.events.RequestReceived):
                        self._start(event)
                    elif isinstance(event, h2.events.DataReceived):
                        stream = self.streams.get(event.stream_id)
                        self.h2.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                        if stream is not None:
                            stream.on_data(event.data)
                    elif isinstance(event, h2.events.StreamEnded):
                        stream = self.streams.get(event.stream_id)
                        if stream is not None:
                            stream.on_end()
                    elif isinstance(event, h2.events.StreamReset):
                        stream = self.streams.pop(event.stream_id, None)
                        if stream is not None:
                            stream.on_reset()
                    elif isinstance(event, h2.events.WindowUpdated):
                        self.window_open.set()
                self.flush()
        except (OSError, ssl.SSLError):
            pass
        finally:
            for stream in list(self.streams.values()):
                stream.on_reset()
            self.writer.close()

    def _start(self, event: Any) -> None:
        headers = {k.lower(): v for k, v in event.headers}
        sid = event.stream_id
        path = headers.get(":path", "")
        match = _ROUTE.fullmatch(path.split("?", 1)[0])
        if headers.get(":method") != "POST" or match is None:
            self._answer(sid, 404, "UnknownOperationException", b'{"message":"not found"}')
            return
        name = match["name"]
        chain = None
        if self.server.credentials is not None:
            signed = dict(headers)
            signed["host"] = headers.get(":authority", "")
            try:
                seed, _key, region, _date = verify_request(
                    "POST", path, signed, self.server.credentials
                )
            except SignatureError as exc:
                self.server.signature_failures.append(str(exc))
                self._answer(
                    sid,
                    403,
                    "InvalidSignatureException",
                    json.dumps({"message": str(exc)}).encode(),
                )
                return
            access = headers["authorization"].split("Credential=", 1)[1].split("/", 1)[0]
            self.server.access_keys_seen.append(access)
            chain = EventChain(seed, secret=self.server.credentials[access], region=region)
        rejection = self.server.reject(name, headers) if self.server.reject else None
        if rejection is not None:
            self._answer(
                sid,
                rejection.status,
                rejection.error_type,
                rejection.body(name),
            )
            return
        handler = self.server.handler_for(name)
        if handler is None:
            self._answer(
                sid,
                400,
                "InputValidationError",
                json.dumps(
                    {"Message": f"Endpoint {name} of account 000000000000 not found."}
                ).encode(),
            )
            return
        stream = _Stream(self, sid, name, headers, chain, handler)
        self.streams[sid] = stream
        stream.task = asyncio.get_running_loop().create_task(stream.serve())

    def _answer(self, sid: int, status: int, error_type: str, body: bytes) -> None:
        self.h2.send_headers(
            sid,
            [
                (":status", str(status)),
                ("content-type", "application/json"),
                ("x-amzn-errortype", error_type),
                ("x-amzn-requestid", str(uuid.uuid4())),
            ],
        )
        self.h2.send_data(sid, body, end_stream=True)
        self.flush()

    async def write(self, sid: int, data: bytes, *, end: bool = False) -> None:
        import h2.exceptions

        view = memoryview(data)
        while True:
            try:
                window = min(
                    self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size
                )
            except h2.exceptions.StreamClosedError:
                return
            if view and window <= 0:
                self.window_open.clear()
                await self.window_open.wait()
                continue
            chunk, view = view[:window], view[window:]
            self.h2.send_data(sid, chunk, end_stream=end and not view)
            self.flush()
            if not view:
                break
        await self.writer.drain()


class _Stream:
    def __init__(
        self,
        conn: _Conn,
        sid: int,
        name: str,
        headers: Mapping[str, str],
        chain: EventChain | None,
        handler: Handler,
    ) -> None:
        self.conn = conn
        self.sid = sid
        self.chain = chain
        self.handler = handler
        self.buffer = FrameBuffer()
        self.reassembler = Joiner(conn.server.max_message_bytes)
        self.call = BidiCall(name, headers, self._emit)
        self.task: asyncio.Task[None] | None = None
        self.input_done = False
        self.done = False
        self.failed: str | None = None
        self.responded = False

    def respond(self) -> None:
        """Send the ``200`` answer's headers (once the model accepted the stream)."""
        if not self.responded:
            self.responded = True
            self.conn.h2.send_headers(
                self.sid,
                [
                    (":status", "200"),
                    ("content-type", _CONTENT_TYPE),
                    ("x-amzn-invoked-production-variant", self.conn.server.variant_name),
                    ("x-amzn-requestid", str(uuid.uuid4())),
                ],
            )
            self.conn.flush()

    async def _emit(self, event: bytes) -> None:
        self.respond()
        await self.conn.write(self.sid, event)

    def on_data(self, data: bytes) -> None:
        from botocore.eventstream import ParserError

        if self.input_done or self.failed:
            return
        try:
            messages = self.buffer.feed(data)
        except ParserError as exc:
            self._refuse(f"corrupt event-stream message: {exc}")
            return
        for headers, payload in messages:
            signed = ":chunk-signature" in headers or ":date" in headers
            if self.chain is not None:
                try:
                    self.chain.verify(headers, payload)
                except SignatureError as exc:
                    self.conn.server.signature_failures.append(str(exc))
                    self._refuse(str(exc))
                    return
            if signed and not payload:  # the signed empty event: end of input
                self._end_input()
                return
            try:
                inner = decode_events(payload) if signed else [(headers, payload)]
            except ParserError as exc:
                self._refuse(f"corrupt inner event: {exc}")
                return
            if len(inner) != 1:
                self._refuse(f"a signed event must carry one inner event, not {len(inner)}")
                return
            self.conn.server.events_received += 1
            part = to_message(*inner[0])
            try:
                whole = self.reassembler.feed(part)
            except OverflowError as exc:
                self._refuse(str(exc))
                return
            if whole is not None:
                self.call._inbox.put_nowait(whole)

    def on_end(self) -> None:
        self._end_input()

    def _end_input(self) -> None:
        if not self.input_done:
            self.input_done = True
            self.call._inbox.put_nowait(None)

    def on_reset(self) -> None:
        if self.failed is None and not self.done:
            self.conn.server.resets += 1
        self.failed = "reset"
        self._end_input()
        if self.task is not None:
            self.task.cancel()

    def _refuse(self, why: str) -> None:
        """End the stream with a ``ModelStreamError`` the way the service reports a bad
        input event, and stop the handler."""
        self.failed = why
        self._end_input()
        if self.task is not None:
            self.task.cancel()
        asyncio.get_running_loop().create_task(self._error_event("StreamBroken", why))

    async def _error_event(self, code: str | None, message: str) -> None:
        """A ``ModelStreamError`` event with ``code``, or ``InternalStreamFailure``
        when ``code`` is ``None``; then the end of the stream."""
        fields = {"Message": message} if code is None else {"Message": message, "ErrorCode": code}
        kind = "InternalStreamFailure" if code is None else "ModelStreamError"
        event = exception_event(kind, fields)
        self.done = True
        self.respond()
        with contextlib.suppress(Exception):
            await self.conn.write(self.sid, event, end=True)
        self.conn.streams.pop(self.sid, None)

    async def serve(self) -> None:
        handler = self.handler
        accept = getattr(handler, "accept", None)
        if accept is not None:  # e.g. the container front: its WebSocket must open first
            try:
                rejection = await accept(self.call)
            except asyncio.CancelledError:
                return
            if rejection is not None:
                self.done = True
                self.conn.streams.pop(self.sid, None)
                self.conn._answer(
                    self.sid,
                    rejection.status,
                    rejection.error_type,
                    rejection.body(self.call.endpoint_name),
                )
                return
        self.respond()
        try:
            await handler(self.call)
        except asyncio.CancelledError:
            return
        except BidiModelError as exc:
            await self._error_event(exc.error_code, exc.message)
            return
        except BidiStreamFailure as exc:
            await self._error_event(None, str(exc))
            return
        except Exception as exc:
            _log.exception("bidirectional handler failed")
            await self._error_event("ModelError", f"{type(exc).__name__}: {exc}")
            return
        self.done = True
        self.respond()
        with contextlib.suppress(Exception):
            await self.conn.write(self.sid, b"", end=True)
        self.conn.streams.pop(self.sid, None)


class BidiServer:
    """Serves ``POST /endpoints/{name}/invocations-bidirectional-stream`` over HTTP/2 on
    loopback, hosting ``handler`` (``async def handler(call: BidiCall) -> None``) for every
    endpoint name, or a mapping of endpoint name to handler (other names get the service's
    400 "not found").

    ``credentials`` (access key -> secret key): when given, the request and every event
    signature are verified (a bad request signature gets 403, a bad event signature ends
    the stream with ``ModelStreamError``; both are recorded in ``signature_failures``);
    otherwise signatures are accepted unchecked. ``tls``: serve TLS (ALPN ``h2``) with
    ``ssl_context`` (default: a self-signed certificate for ``localhost``/``127.0.0.1``,
    needs the ``cryptography`` package), else cleartext h2c with prior knowledge.
    ``reject(endpoint_name, headers)`` may return a :class:`BidiRejection` to answer a
    stream with an error instead. ``max_connection_age`` (seconds, default 1800 as on
    SageMaker) cuts a connection once older by ``clock`` (checked at each incoming frame and
    once a second; :meth:`enforce_max_age` checks now); :meth:`cut_connections` cuts them
    all now.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        handler: Handler | Mapping[str, Handler],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: Mapping[str, str] | None = None,
        tls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        reject: Callable[[str, Mapping[str, str]], BidiRejection | None] | None = None,
        variant_name: str = "AllTraffic",
        max_connection_age: float = 1800.0,
        max_message_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # One handler for every endpoint name, or a handler per endpoint name (others: 400).
        self.handlers: Mapping[str, Handler] | None = (
            dict(handler) if isinstance(handler, Mapping) else None
        )
        self.handler: Handler | None = None if isinstance(handler, Mapping) else handler
        self.host = host
        self.port = port
        self.credentials = dict(credentials) if credentials is not None else None
        self.tls = tls
        self.ssl_context = ssl_context
        self.reject = reject
        self.variant_name = variant_name
        self.max_connection_age = max_connection_age
        self.max_message_bytes = max_message_bytes
        self.clock = clock
        self.signature_failures: list[str] = []
        self.access_keys_seen: list[str] = []
        self.resets = 0
        self.events_received = 0
        self.cafile: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[_Conn] = set()
        self._watcher: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (h2c) or ``https://...`` with TLS: give it to
        ``Endpoint(..., endpoint_url=...)``."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def handler_for(self, endpoint_name: str) -> Handler | None:
        """The handler serving ``endpoint_name`` (``None``: no such endpoint)."""
        if self.handlers is not None:
            return self.handlers.get(endpoint_name)
        return self.handler

    def adopt(self, sock: socket.socket) -> None:
        """Serve an accepted connection whose client speaks HTTP/2 with prior knowledge
        (the local runtime hands over such connections from its HTTP/1.1 port)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            sock.close()
            return

        async def serve() -> None:
            reader, writer = await asyncio.open_connection(sock=sock)
            await self._accept(reader, writer)

        asyncio.run_coroutine_threadsafe(serve(), loop)

    def _aged(self, conn: _Conn) -> bool:
        return self.clock() - conn.opened >= self.max_connection_age

    def start(self) -> Self:
        """Start serving in a background thread; returns once the port is bound."""
        context = None
        if self.tls:
            context = self.ssl_context or self._self_signed()
            context.set_alpn_protocols(["h2"])
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        async def boot() -> None:
            try:
                self._server = await asyncio.start_server(
                    self._accept, self.host, self.port, ssl=context
                )
                self.port = self._server.sockets[0].getsockname()[1]
                self._watcher = asyncio.get_running_loop().create_task(self._watch_ages())
            except BaseException as exc:
                failure.append(exc)
            finally:
                ready.set()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.create_task(boot())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="smclient-bidi-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            self.stop()
            raise failure[0]
        return self

    def _self_signed(self) -> ssl.SSLContext:
        import os
        import tempfile

        from ._certs import self_signed_pem

        cert, key = self_signed_pem(self.host)
        folder = tempfile.mkdtemp(prefix="smclient-bidi-")
        certfile, keyfile = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        with open(certfile, "wb") as f:
            f.write(cert)
        with open(keyfile, "wb") as f:
            f.write(key)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certfile, keyfile)
        self.cafile = certfile
        return context

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(self, reader, writer)
        self._conns.add(conn)
        try:
            await conn.run()
        finally:
            self._conns.discard(conn)

    async def _watch_ages(self) -> None:
        # Silent connections too reach the cap: look once a second (real time; the age
        # itself is read from ``clock``).
        while True:
            await asyncio.sleep(1.0)
            self._cut_aged()

    def _cut_aged(self) -> int:
        aged = [conn for conn in self._conns if self._aged(conn)]
        for conn in aged:
            conn.cut()
        return len(aged)

    def enforce_max_age(self) -> int:
        """Cut the connections older than ``max_connection_age`` by ``clock`` now (the
        server also looks once a second, and at each incoming frame); returns how many."""

        async def cut() -> int:
            return self._cut_aged()

        return int(self._run(cut()))

    def cut_connections(self) -> int:
        """Drop every open connection now, without a goodbye; returns how many."""

        async def cut() -> int:
            conns = list(self._conns)
            for conn in conns:
                conn.cut()
            return len(conns)

        return int(self._run(cut()))

    def _run(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def stop(self) -> None:
        """Stop serving and close every connection."""
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            handlers = [
                stream.task
                for conn in self._conns
                for stream in conn.streams.values()
                if stream.task is not None
            ]
            for conn in list(self._conns):
                conn.cut()  # their read loops end on their own, no cancellation noise
            for task in handlers:
                task.cancel()
            if self._watcher is not None:
                self._watcher.cancel()
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if pending:
                await asyncio.wait(pending, timeout=2)

        if loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
