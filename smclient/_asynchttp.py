"""The asyncio transport: the fast transport's requests (the same bytes: shared signer, headers
and template, see :mod:`smclient._fasthttp`) written and read with asyncio streams.

A minimal HTTP/1.1 client, chosen by measurement over aiohttp and httpx (docs/asyncio.md):
the runtime needs only ``POST`` with a body, keep-alive, ``Content-Length`` or chunked
answers, TLS and timeouts, and without a third-party client the asyncio API needs no extra
and pins nothing. Pools belong to one :class:`AsyncPools` (one per ``AsyncEndpoint``) and are
kept per event loop, so two loops in two threads each use their own connections; nothing is
global.

Cancellation: a request cancelled while in flight closes its connection (it is never put
back in the pool with an answer pending); a stream closed before its end closes it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import attrs

from ._fasthttp import FastTransport, typed_error_answer
from ._request import STREAM, AsyncResponse, InvokeResponse, Request, request_id

__all__ = ["AsyncPools", "AsyncStreamResponse", "send_async"]

T = TypeVar("T")
_HEAD_LIMIT = 64 * 1024


async def _within(seconds: float, awaitable: Awaitable[T]) -> T:
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    try:  # pragma: no cover - Python 3.10, where asyncio's TimeoutError is its own class
        return await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError as exc:
        raise TimeoutError(str(exc)) from exc


class _Headers(dict[str, str]):
    """Response headers, lower-case names; ``get`` is case-insensitive."""

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


@attrs.define
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        transport = self.writer.transport
        if not transport.is_closing():
            transport.close()


class _Pool:
    """Idle connections of one event loop."""

    def __init__(self, maxsize: int) -> None:
        self.idle: list[_Conn] = []
        self.maxsize = maxsize

    def get(self) -> _Conn | None:
        while self.idle:
            conn = self.idle.pop()
            if not conn.writer.transport.is_closing() and not conn.reader.at_eof():
                return conn
            conn.close()
        return None

    def put(self, conn: _Conn) -> None:
        if len(self.idle) < self.maxsize and not conn.writer.transport.is_closing():
            self.idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


def _close_pools(pools: weakref.WeakKeyDictionary[Any, _Pool]) -> None:
    for loop, pool in list(pools.items()):
        if loop.is_closed():
            continue
        for conn in pool.idle:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(conn.close)


class AsyncPools:
    """The connection pools of one ``AsyncEndpoint``: one per running event loop."""

    def __init__(self) -> None:
        self._pools: weakref.WeakKeyDictionary[Any, _Pool] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        weakref.finalize(self, _close_pools, self._pools)

    def for_loop(self, maxsize: int) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            with self._lock:
                pool = self._pools.setdefault(loop, _Pool(maxsize))
        return pool

    async def aclose(self) -> None:
        """Close the running loop's idle connections. Other loops' pools are theirs to
        close (from their own loop): a loop may still be using them."""
        loop = asyncio.get_running_loop()
        with self._lock:
            pool = self._pools.pop(loop, None)
        if pool is None:
            return
        writers = [conn.writer for conn in pool.idle]
        pool.close()
        for writer in writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@attrs.define
class AsyncStreamResponse:
    """An open streamed answer on the asyncio transport (see ``StreamResponse``)."""

    content_type: str | None
    invoked_production_variant: str | None
    custom_attributes: str | None
    request_id: str | None
    chunks: AsyncIterator[bytes] = attrs.field(repr=False)
    _conn: _Conn = attrs.field(repr=False, alias="conn")
    _pool: _Pool = attrs.field(repr=False, alias="pool")
    done: bool = False
    reusable: bool = True

    def close(self) -> None:
        """Release the connection: back to the pool after a complete answer, else closed."""
        if self.done and self.reusable:
            self._pool.put(self._conn)
        else:
            self._conn.close()


async def _connect(fast: FastTransport) -> _Conn:
    import botocore.exceptions as bce

    template = fast.template
    connect_timeout, _read, _size = fast.timeouts
    try:
        reader, writer = await _within(
            connect_timeout,
            asyncio.open_connection(
                template.hostname,
                template.port or (443 if template.scheme == "https" else 80),
                ssl=fast.ssl_context,
                limit=_HEAD_LIMIT,
            ),
        )
    except TimeoutError as exc:
        raise bce.ConnectTimeoutError(endpoint_url=fast.url, error=exc) from exc
    except OSError as exc:
        raise bce.EndpointConnectionError(endpoint_url=fast.url, error=exc) from exc
    return _Conn(reader, writer)


def _parse_head(head: bytes) -> tuple[int, _Headers, bool]:
    """The status, the headers and whether the connection may be kept for another request
    (as http.client decides: HTTP/1.1 unless ``Connection: close``; HTTP/1.0 only with
    ``Connection: keep-alive``)."""
    import http.client

    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise http.client.BadStatusLine(lines[0])
    headers = _Headers()
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise http.client.HTTPException(f"malformed header line {line[:80]!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if parts[0] == "HTTP/1.1":
        keep = "close" not in tokens
    else:
        keep = "keep-alive" in tokens and "close" not in tokens
    return int(parts[1]), headers, keep


async def _chunked(reader: asyncio.StreamReader, read_timeout: float) -> AsyncIterator[bytes]:
    import http.client

    while True:
        size_line = await _within(read_timeout, reader.readuntil(b"\r\n"))
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise http.client.HTTPException(f"bad chunk size {size_line[:40]!r}") from None
        if size == 0:
            while (await _within(read_timeout, reader.readuntil(b"\r\n"))) != b"\r\n":
                pass  # trailers
            return
        data = await _within(read_timeout, reader.readexactly(size + 2))
        yield data[:-2]


async def _body(
    reader: asyncio.StreamReader, headers: _Headers, read_timeout: float
) -> AsyncIterator[bytes]:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        async for data in _chunked(reader, read_timeout):
            yield data
        return
    length = headers.get("content-length")
    if length is not None:
        left = int(length)
        while left:
            data = await _within(read_timeout, reader.read(min(left, 65536)))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(data)
            yield data
        return
    while data := await _within(read_timeout, reader.read(65536)):  # until the server closes
        yield data


async def _whole(reader: asyncio.StreamReader, headers: _Headers, read_timeout: float) -> bytes:
    """A whole body; cut short, ``IncompleteReadError`` with everything that arrived."""
    length = headers.get("content-length")
    if length is not None and "transfer-encoding" not in headers:
        return await _within(read_timeout, reader.readexactly(int(length)))
    parts: list[bytes] = []
    try:
        async for data in _body(reader, headers, read_timeout):
            parts.append(data)
    except asyncio.IncompleteReadError as exc:
        raise asyncio.IncompleteReadError(b"".join(parts) + exc.partial, exc.expected) from exc
    return b"".join(parts)


async def send_async(
    fast: FastTransport, pools: AsyncPools, request: Request
) -> InvokeResponse | AsyncResponse | AsyncStreamResponse:
    """Send ``request`` on the running loop; raise botocore's exception for a failure or an
    error answer (the retry loop translates it), exactly as the sync fast transport does."""
    import http.client

    import botocore.exceptions as bce

    _connect_timeout, read_timeout, size = fast.timeouts
    pool = pools.for_loop(size)
    data = fast.encode(request)
    conn = pool.get() or await _connect(fast)
    try:
        try:
            conn.writer.write(data)
            head = await _within(read_timeout, conn.reader.readuntil(b"\r\n\r\n"))
            status, headers, reusable = _parse_head(head)
            if request.operation == STREAM and status < 300:
                return _stream(conn, pool, headers, read_timeout, reusable)
            try:
                body = await _whole(conn.reader, headers, read_timeout)
            except asyncio.IncompleteReadError as exc:
                if not typed_error_answer(status, headers.get):
                    raise
                body = exc.partial  # what arrived, parsed as boto3 does
                reusable = False
        except TimeoutError as exc:
            raise bce.ReadTimeoutError(endpoint_url=fast.url, error=exc) from exc
        except (OSError, EOFError, http.client.HTTPException, asyncio.LimitOverrunError) as exc:
            # IncompleteReadError is an EOFError: a cut connection or a truncated body.
            raise bce.ConnectionClosedError(endpoint_url=fast.url) from exc
    except BaseException:  # cancelled included: an answer may be pending on the socket
        conn.close()
        raise
    framed = "content-length" in headers or "chunked" in headers.get("transfer-encoding", "")
    if reusable and framed:
        pool.put(conn)
    else:
        conn.close()
    return fast.parse(request, status, headers, body)


def _stream(
    conn: _Conn, pool: _Pool, headers: _Headers, read_timeout: float, reusable: bool
) -> AsyncStreamResponse:
    response: AsyncStreamResponse

    async def chunks() -> AsyncIterator[bytes]:
        async for data in _body(conn.reader, headers, read_timeout):
            yield data
        response.done = True

    response = AsyncStreamResponse(
        content_type=headers.get("x-amzn-sagemaker-content-type"),
        invoked_production_variant=headers.get("x-amzn-invoked-production-variant"),
        custom_attributes=headers.get("x-amzn-sagemaker-custom-attributes"),
        request_id=request_id(headers.get),
        chunks=chunks(),
        conn=conn,
        pool=pool,
        reusable=reusable,
    )
    return response
