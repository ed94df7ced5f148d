"""The asyncio bidirectional stream: one HTTP/2 connection (``h2``, sans-I/O, on asyncio
sockets) carrying one ``InvokeEndpointWithBidirectionalStream`` request.

Why a connection per stream: the service caps a connection at 30 minutes and a stream is
long-lived, so pooling would buy little and a stream's failure cannot touch another's.

Failure is shared state: the first failure (an error answer, a ``ModelStreamError`` or
``InternalStreamFailure`` event, a reset, a cut connection, a read timeout) is stored and
raised to whoever sends *and* whoever reads next, after the messages that arrived before
it have been read. Nothing is ever retried here: the model may have consumed the input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from typing_extensions import Self

from .._errors import (
    ConfigurationError,
    ConnectError,
    DuplexClosedError,
    ErrorContext,
    InvalidInputError,
    ReadTimeoutError,
    ServiceError,
    SMClientError,
    StreamInterruptedError,
    StreamTimeoutError,
    translate_bidi_response,
    translate_stream_event,
)
from ._eventstream import Decoder
from ._messages import DataType, DuplexMessage, Reassembler, encode_part, parse_part, split
from ._request import Target
from ._signing import Credentials, EventSigner, sign_request

if TYPE_CHECKING:
    import h2.connection

__all__ = ["H2Stream", "StreamSettings"]

logger = logging.getLogger("smclient")

_OPERATION = "InvokeEndpointWithBidirectionalStream"
# Our receive window: large enough for a fast model, small enough to bound memory when the
# caller stops reading (flow control then pauses the model, see _ack).
_RECEIVE_WINDOW = 4 * 1024 * 1024
_CANCEL = 0x8  # HTTP/2 error code CANCEL


@attrs.frozen
class StreamSettings:
    """Everything one stream needs, resolved before any I/O (built by the facade)."""

    target: Target
    headers: tuple[tuple[str, str], ...]
    region: str
    credentials: Callable[[], Credentials | None]
    ctx: ErrorContext
    connect_timeout: float
    read_timeout: float | None
    close_timeout: float = 5.0
    part_size: int = 1024 * 1024
    raw_parts: bool = False
    max_message_bytes: int = 64 * 1024 * 1024
    wait_for_response: bool = True
    clock: Callable[[], float] = time.time
    ssl_context: ssl.SSLContext | None = None
    user_agent: str | None = None


class _End:
    """Queue marker: no more messages (the model ended or the stream failed)."""


_END = _End()


class H2Stream:
    """One HTTP/2 connection carrying one stream; the public :class:`AsyncDuplexStream`
    drives it (and replaces it when a reconnect policy says so). Its behaviour is the one
    documented there."""

    def __init__(self, settings: StreamSettings) -> None:
        self._s = settings
        self._state = "new"  # new -> open -> closed
        self._input_closed = False
        self._failure: SMClientError | None = None
        self._queue: deque[DuplexMessage | _End] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._responded = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._conn: h2.connection.H2Connection | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._stream_id = 0
        self._signer: EventSigner | None = None
        self._decoder = Decoder()
        self._reassembler = Reassembler(settings.max_message_bytes)
        self._error_status: int | None = None
        self._error_headers: dict[str, str] = {}
        self._error_body = bytearray()
        self._unacked = 0
        self._ended = False
        self.invoked_production_variant: str | None = None
        self.request_id: str | None = None
        self.opened_at: float | None = None
        self.messages_sent = 0
        self.bytes_sent = 0
        self.messages_received = 0
        self.bytes_received = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            await self.aclose()
        else:
            self.abort()

    async def open(self) -> Self:
        """Connect, send the signed request and (by default) wait for the answer's
        headers, raising the service's error answer if there is one. Called by
        ``async with``; calling it twice raises :class:`DuplexClosedError`."""
        if self._state != "new":
            raise DuplexClosedError("this stream was already opened; open a new one")
        self._state = "open"
        try:
            await self._connect()
            if self._s.wait_for_response:
                await self._wait_response()
        except BaseException:
            self.abort()
            raise
        return self

    async def _connect(self) -> None:
        import h2.config
        import h2.connection
        import h2.settings

        s = self._s
        try:
            creds = await asyncio.to_thread(s.credentials)
        except SMClientError:
            raise
        except Exception as exc:  # a refresh that failed (SSO expired, role not assumable...)
            raise ConfigurationError(
                f"could not get AWS credentials for the stream: {type(exc).__name__}: {exc}"
            ) from exc
        target = s.target
        context = None
        if target.scheme == "https":
            context = s.ssl_context or ssl.create_default_context()
            context.set_alpn_protocols(["h2"])
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(
                    target.host,
                    target.port,
                    ssl=context,
                    server_hostname=target.host if context else None,
                ),
                s.connect_timeout,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            raise ConnectError(
                f"could not connect to {target.authority}: {type(exc).__name__} {exc}",
                **self._where(),
            ) from exc
        if context is not None and self._writer is not None:
            chosen = self._writer.get_extra_info("ssl_object").selected_alpn_protocol()
            if chosen != "h2":
                raise ConnectError(
                    f"{target.authority} did not agree to HTTP/2 (ALPN {chosen!r})",
                    **self._where(),
                )
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _RECEIVE_WINDOW,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
            },
        )
        conn.initiate_connection()
        conn.increment_flow_control_window(_RECEIVE_WINDOW)
        self._conn = conn
        headers = list(s.headers)
        if s.user_agent:
            headers.append(("user-agent", s.user_agent))
        if creds is not None:
            headers, seed = sign_request(
                method="POST",
                authority=target.authority,
                path=target.path,
                headers=headers,
                credentials=creds,
                region=s.region,
                now=s.clock(),
            )
            self._signer = EventSigner(credentials=creds, region=s.region, seed=seed, clock=s.clock)
        self._stream_id = conn.get_next_available_stream_id()
        conn.send_headers(
            self._stream_id,
            [
                (":method", "POST"),
                (":scheme", target.scheme),
                (":authority", target.authority),
                (":path", target.path),
                *headers,
            ],
        )
        self._flush()
        self._reader_task = asyncio.create_task(self._read_loop(), name="smclient-duplex-reader")

    async def _wait_response(self) -> None:
        try:
            await asyncio.wait_for(self._responded.wait(), self._s.read_timeout)
        except asyncio.TimeoutError:
            self._fail(
                ReadTimeoutError(
                    f"no answer within the read timeout ({self._s.read_timeout} s)",
                    **self._where(),
                )
            )
        if self._failure is not None:
            raise self._failure

    async def close_input(self) -> None:
        """End the input: a signed empty event, then the end of the HTTP/2 request
        stream. The model's answers keep coming; read them to the end. Idempotent."""
        self._check_open(sending=False)
        async with self._send_lock:
            if self._input_closed:
                return
            self._raise_failure()
            if self._signer is not None:
                await self._write(self._signer.sign(b""))
            self._input_closed = True
            assert self._conn is not None
            self._conn.end_stream(self._stream_id)
            self._flush()

    def abort(self) -> None:
        """Reset the HTTP/2 stream and close the connection now (no waiting)."""
        if self._state == "closed":
            return
        self._state = "closed"
        conn, writer = self._conn, self._writer
        if conn is not None and writer is not None and not writer.is_closing():
            import h2.exceptions

            try:
                if not self._ended:
                    conn.reset_stream(self._stream_id, _CANCEL)
                conn.close_connection()
                writer.write(conn.data_to_send())
            except (h2.exceptions.H2Error, OSError, RuntimeError):
                pass  # the connection is already unusable; closing it is all that is left
        if writer is not None:
            writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._failure is None:
            self._failure_for_closed()
        self._wake()

    async def aclose(self) -> None:
        """Close gracefully: close the input if still open, wait up to ``close_timeout``
        seconds for the model to end, then close the connection."""
        if self._state != "open":
            self.abort()
            return
        try:
            if self._failure is None and not self._input_closed:
                await asyncio.wait_for(self.close_input(), self._s.close_timeout)
            if self._failure is None and not self._ended:
                await asyncio.wait_for(self._until_ended(), self._s.close_timeout)
        except (asyncio.TimeoutError, SMClientError):
            pass  # closing anyway; unread answers are dropped, as documented
        finally:
            writer = self._writer
            self.abort()
            if writer is not None:
                with contextlib.suppress(asyncio.TimeoutError, OSError):
                    await asyncio.wait_for(writer.wait_closed(), self._s.close_timeout)

    async def _until_ended(self) -> None:
        while not self._ended and self._failure is None:
            self._queue.clear()
            self._ack_all()
            self._readable.clear()
            await self._readable.wait()

    # -- sending -----------------------------------------------------------------------

    async def send(self, data: bytes | bytearray | memoryview | str) -> None:
        """Send one message: ``bytes`` as ``BINARY``, ``str`` as ``UTF8``. Messages larger
        than ``part_size`` go as ``PARTIAL`` parts and a ``COMPLETE`` last part. Waits for
        HTTP/2 flow control (at most the read timeout); raises the stream's failure if it
        has failed, :class:`DuplexClosedError` after ``close_input``."""
        data_type: DataType
        if isinstance(data, str):
            try:
                payload, data_type = data.encode("utf-8"), "UTF8"
            except UnicodeEncodeError as exc:
                raise InvalidInputError(
                    "data",
                    f"text cannot be sent as UTF-8 ({exc.reason} at index {exc.start})",
                    limit="valid Unicode text (no lone surrogates)",
                ) from None
        elif isinstance(data, bytes | bytearray | memoryview):
            payload, data_type = bytes(data), "BINARY"
        else:
            raise InvalidInputError(
                "data", f"expected bytes or str, got {type(data).__name__}", limit="bytes or str"
            )
        self._check_open(sending=True)
        parts = list(split(payload, data_type, self._s.part_size))
        async with self._send_lock:
            self._check_open(sending=True)
            for chunk, complete in parts:
                inner = encode_part(chunk, data_type, complete)
                await self._write(self._signer.sign(inner) if self._signer else inner)
        self.messages_sent += 1
        self.bytes_sent += len(payload)

    def _check_open(self, *, sending: bool) -> None:
        self._raise_failure()
        if self._state == "new":
            raise DuplexClosedError("the stream is not open: use it in a with block")
        if self._state == "closed" or (sending and self._input_closed):
            raise DuplexClosedError("the stream's input is closed: open a new stream to send more")

    async def _write(self, data: bytes) -> None:
        import h2.exceptions

        conn = self._conn
        assert conn is not None
        assert self._writer is not None
        view = memoryview(data)
        while view:
            self._raise_failure()
            try:
                window = min(
                    conn.local_flow_control_window(self._stream_id), conn.max_outbound_frame_size
                )
            except h2.exceptions.StreamClosedError as exc:
                self._fail(self._broken(f"the service closed the stream ({exc})"))
                self._raise_failure()
                raise  # unreachable: _raise_failure raised
            if window <= 0:
                self._writable.clear()
                try:
                    await asyncio.wait_for(self._writable.wait(), self._s.read_timeout)
                except asyncio.TimeoutError:
                    self._fail(
                        StreamTimeoutError(
                            f"the service accepted no input for {self._s.read_timeout} s "
                            "(HTTP/2 flow control)",
                            **self._counts(),
                        )
                    )
                continue
            conn.send_data(self._stream_id, view[:window])
            view = view[window:]
            self._flush()
        try:
            await asyncio.wait_for(self._writer.drain(), self._s.read_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            self._fail(self._broken(f"writing failed ({type(exc).__name__}: {exc})"))
            self._raise_failure()

    def _flush(self) -> None:
        assert self._conn is not None
        assert self._writer is not None
        data = self._conn.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    # -- receiving ---------------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> DuplexMessage:
        message = await self.receive()
        if message is None:
            raise StopAsyncIteration
        return message

    async def receive(self) -> DuplexMessage | None:
        """The model's next message, ``None`` when the model ended its answer. Raises the
        stream's failure after the messages that came before it, and
        :class:`StreamTimeoutError` (failing the stream) when nothing came within the
        read timeout."""
        if self._state == "new":
            raise DuplexClosedError("the stream is not open: use it in a with block")
        while not self._queue:
            if self._state == "closed" and self._failure is None:
                return None
            self._readable.clear()
            try:
                await asyncio.wait_for(self._readable.wait(), self._s.read_timeout)
            except asyncio.TimeoutError:
                self._fail(
                    StreamTimeoutError(
                        f"no message from the model within the read timeout "
                        f"({self._s.read_timeout} s)",
                        **self._counts(),
                    )
                )
        item = self._queue[0]
        if isinstance(item, _End):
            self._raise_failure()
            return None
        self._queue.popleft()
        self._ack_all()
        return item

    # -- the connection's reader ---------------------------------------------------------

    async def _read_loop(self) -> None:
        import h2.exceptions

        assert self._reader is not None
        assert self._conn is not None
        try:
            while True:
                data = await self._reader.read(256 * 1024)
                if not data:
                    if not self._ended:
                        self._fail(self._broken("the connection was closed by the service"))
                    return
                try:
                    events = self._conn.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    self._fail(self._broken(f"HTTP/2 protocol error: {exc}"))
                    return
                for event in events:
                    self._on_event(event)
                self._flush()
                if self._ended and self._failure is not None:
                    return
        except asyncio.CancelledError:
            raise
        except (OSError, ssl.SSLError) as exc:
            self._fail(self._broken(f"the connection broke ({type(exc).__name__}: {exc})"))

    def _on_event(self, event: Any) -> None:
        import h2.events

        if getattr(event, "stream_id", self._stream_id) not in (0, self._stream_id):
            return
        if isinstance(event, h2.events.ResponseReceived):
            headers = {
                bytes(k).decode().lower() if isinstance(k, bytes | bytearray) else k.lower(): (
                    bytes(v).decode(errors="replace") if isinstance(v, bytes | bytearray) else v
                )
                for k, v in event.headers
            }
            status = int(headers.get(":status", "0"))
            self.request_id = headers.get("x-amzn-requestid")
            if status == 200:
                self.invoked_production_variant = headers.get("x-amzn-invoked-production-variant")
                self.opened_at = self._s.clock()
                self._responded.set()
            else:
                self._error_status, self._error_headers = status, headers
        elif isinstance(event, h2.events.DataReceived):
            self._unacked += event.flow_controlled_length
            if self._error_status is not None:
                self._error_body += event.data[: 64 * 1024 - len(self._error_body)]
            else:
                self._on_data(event.data)
            if len(self._queue) < 256:
                self._ack_all()
        elif isinstance(event, h2.events.StreamEnded):
            self._ended = True
            if self._error_status is not None:
                self._fail_with_answer()
            elif self._reassembler.pending:
                self._fail(self._broken("the model's answer ended inside a PARTIAL message"))
            else:
                self._queue.append(_END)
                self._responded.set()
                self._wake()
        elif isinstance(event, h2.events.StreamReset):
            self._ended = True
            if self._error_status is not None:
                self._fail_with_answer()
            else:
                self._fail(self._broken(f"the service reset the stream (code {event.error_code})"))
        elif isinstance(event, h2.events.ConnectionTerminated):
            graceful = event.error_code == 0 and (event.last_stream_id or 0) >= self._stream_id
            if graceful:  # GOAWAY(NO_ERROR) that still covers our stream: it may finish
                return
            if not self._ended:
                self._fail(
                    self._broken(f"the service closed the connection (code {event.error_code})")
                )
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._writable.set()

    def _on_data(self, data: bytes) -> None:
        from botocore.eventstream import ParserError

        try:
            events = self._decoder.feed(data)
        except ParserError as exc:
            self._fail(self._broken(f"corrupt event-stream message ({exc})"))
            return
        for ev in events:
            kind = ev.headers.get(":message-type", "event")
            if kind in ("exception", "error"):
                error = translate_stream_event(
                    ev.headers, ev.payload, self._s.ctx, bytes_received=self.bytes_received
                )
                if isinstance(error, ServiceError):
                    error.request_id = self.request_id
                self._fail(error)
                return
            if ev.headers.get(":event-type", "PayloadPart") != "PayloadPart":
                logger.debug("duplex: ignoring event %r", ev.headers.get(":event-type"))
                continue
            part = parse_part(ev)
            self.bytes_received += len(part.data)
            if self._s.raw_parts:
                message: DuplexMessage | None = part
            else:
                try:
                    message = self._reassembler.feed(part)
                except OverflowError as exc:
                    self._fail(self._broken(str(exc)))
                    return
            if message is not None:
                self.messages_received += 1
                self._queue.append(message)
                self._readable.set()

    def _fail_with_answer(self) -> None:
        assert self._error_status is not None
        self._fail(
            translate_bidi_response(
                self._error_status, self._error_headers, bytes(self._error_body), self._s.ctx
            )
        )

    def _ack_all(self) -> None:
        """Hand flow-control credit back (the model may send that much more)."""
        if self._unacked and self._conn is not None and not self._ended:
            import h2.exceptions

            # H2Error: the stream is closing; no credit is needed any more.
            with contextlib.suppress(h2.exceptions.H2Error):
                self._conn.acknowledge_received_data(self._unacked, self._stream_id)
            self._unacked = 0
            if self._writer is not None:
                self._flush()

    # -- failure -----------------------------------------------------------------------

    def _fail(self, error: SMClientError) -> None:
        if self._failure is not None:
            return
        self._failure = error
        self._queue.append(_END)
        self._responded.set()
        self._wake()
        if self._state == "open" and not self._ended and self._conn is not None:
            import h2.exceptions

            try:  # stop the model: nothing more will be read or sent on this stream
                self._conn.reset_stream(self._stream_id, _CANCEL)
                self._ended = True
                self._flush()
            except (h2.exceptions.H2Error, AssertionError, RuntimeError):
                pass

    def _failure_for_closed(self) -> None:
        self._queue.append(_END)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _wake(self) -> None:
        self._readable.set()
        self._writable.set()

    def _where(self) -> dict[str, Any]:
        ctx = self._s.ctx
        return {
            "endpoint": ctx.endpoint,
            "operation": ctx.operation,
            "target_model": ctx.target_model,
            "attempts": ctx.attempts,
        }

    def _counts(self) -> dict[str, Any]:
        return {
            "bytes_received": self.bytes_received,
            "chunks_received": self.messages_received,
            **self._where(),
        }

    def _broken(self, why: str) -> StreamInterruptedError:
        return StreamInterruptedError(
            f"the bidirectional stream broke after {self.messages_received} messages "
            f"({self.bytes_received} bytes) received: {why}",
            **self._counts(),
        )

    @property
    def failure(self) -> SMClientError | None:
        """The error that ended the stream, if it failed."""
        return self._failure

    @property
    def input_closed(self) -> bool:
        """Whether ``close_input`` was called."""
        return self._input_closed

    def __repr__(self) -> str:
        state = "failed" if self._failure else self._state
        return f"<H2Stream {self._s.ctx.endpoint!r} {state}>"
