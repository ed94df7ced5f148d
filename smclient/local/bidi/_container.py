"""Fronting a container over the bidirectional container contract (protocol.md §8): one
client stream = one WebSocket to ``ws://{container}/invocations-bidirectional-stream`` (or
the model invocation path, with the model query string as its query).

Mapping, as SageMaker does it (items the service leaves open are choices, marked *):

- client ``UTF8`` messages -> text frames, ``BINARY`` -> binary frames (*whole messages:
  PARTIAL parts are joined before they go to the container);
- container text/binary frames -> ``PayloadPart`` with ``UTF8``/``BINARY``; a fragment
  with more to come -> ``PARTIAL``, the final fragment -> ``COMPLETE``;
- a container text frame ``{"ModelStreamError": {"ErrorCode": ..., "Message": ...}}`` ->
  a ``ModelStreamError`` event; a close with a code other than 1000 -> ``ModelStreamError``
  (``StreamBroken``, with the code and reason); *a normal close (1000) ends the stream;
- a refused or failed upgrade -> ``424 ModelError`` before the stream (the container's
  status as ``OriginalStatusCode``);
- *the end of the client's input -> a close frame (1000) to the container, which may still
  send its last answers before it closes;
- liveness: a ping every ``ping_interval`` seconds (60); ``max_missed_pongs`` (5) missed
  pongs close the WebSocket and fail the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from ._server import BidiCall, BidiModelError, BidiRejection

__all__ = ["ContainerBidiHandler"]

_DEFAULT_PATH = "invocations-bidirectional-stream"


class ContainerBidiHandler:
    """A :class:`BidiServer` handler that fronts a running container at ``url``
    (``http://host:port``) over the WebSocket container contract (see the module notes).

    ``connect_timeout`` (seconds, default 5) bounds opening the WebSocket; ``ping_interval``
    (seconds, default 60) and ``max_missed_pongs`` (default 5) are SageMaker's liveness
    rule; ``sleep`` is the wait between pings (tests inject their own).

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        ping_interval: float = 60.0,
        max_missed_pongs: int = 5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "ws") or not parts.hostname:
            raise ValueError(f"container url {url!r}: expected http://host:port")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.max_missed_pongs = max_missed_pongs
        self._sleep = sleep
        self._sockets: dict[int, _Socket] = {}

    async def accept(self, call: BidiCall) -> BidiRejection | None:
        """Open the container's WebSocket; a refusal becomes the 424 answer."""
        target = "/" + (call.invocation_path or _DEFAULT_PATH)
        if call.query_string:
            target += "?" + call.query_string
        socket = _Socket(self)
        refusal = await socket.connect(target)
        if refusal is not None:
            return refusal
        self._sockets[id(call)] = socket
        return None

    async def __call__(self, call: BidiCall) -> None:
        socket = self._sockets.pop(id(call))
        try:
            await socket.relay(call)
        finally:
            socket.close_transport()


class _Socket:
    def __init__(self, front: ContainerBidiHandler) -> None:
        self.front = front
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.ws: Any = None
        self.pongs = 0
        self.pings = 0
        self.closed_by_us = False

    async def connect(self, target: str) -> BidiRejection | None:
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request

        front = self.front
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(front.host, front.port), front.connect_timeout
            )
            self.reader, self.writer = reader, writer
            self.ws = WSConnection(ConnectionType.CLIENT)
            writer.write(self.ws.send(Request(host=f"{front.host}:{front.port}", target=target)))
            while True:
                data = await asyncio.wait_for(reader.read(65536), front.connect_timeout)
                if not data:
                    return self._refused(
                        502, "the container closed the connection during the upgrade"
                    )
                self.ws.receive_data(data)
                for event in self.ws.events():
                    if isinstance(event, AcceptConnection):
                        return None
                    if isinstance(event, RejectConnection):
                        status = event.status_code
                        body = b""
                        if event.has_body:
                            for more in self.ws.events():
                                if isinstance(more, RejectData):
                                    body += more.data
                        return self._refused(status, body.decode(errors="replace")[:500])
        except (OSError, asyncio.TimeoutError) as exc:
            return self._refused(502, f"{type(exc).__name__}: {exc}")

    def _refused(self, status: int, detail: str) -> BidiRejection:
        self.close_transport()
        return BidiRejection(
            424,
            f"Failed to establish WebSocket connection (container answered {status}: {detail})",
            original_status_code=status,
        )

    async def relay(self, call: BidiCall) -> None:
        tasks = [
            asyncio.ensure_future(self._upstream(call)),
            asyncio.ensure_future(self._pinger()),
        ]
        try:
            await self._downstream(call)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _upstream(self, call: BidiCall) -> None:
        from wsproto.events import BytesMessage, CloseConnection, TextMessage

        async for message in call:
            if message.is_text:
                self._send(TextMessage(data=message.data.decode("utf-8", errors="replace")))
            else:
                self._send(BytesMessage(data=message.data))
        # The client's input ended: ask the container to finish (it may still answer).
        self.closed_by_us = True
        self._send(CloseConnection(code=1000, reason="end of input"))

    async def _pinger(self) -> None:
        from wsproto.events import CloseConnection, Ping

        front = self.front
        while True:
            await self.front._sleep(front.ping_interval)
            if self.pings - self.pongs >= front.max_missed_pongs:
                self._send(CloseConnection(code=1011, reason="missed pongs"))
                self.close_transport()
                return
            self.pings += 1
            self._send(Ping(payload=str(self.pings).encode()))

    def _send(self, event: Any) -> None:
        from wsproto.utilities import LocalProtocolError

        if self.writer is None or self.writer.is_closing():
            return
        with contextlib.suppress(LocalProtocolError):
            self.writer.write(self.ws.send(event))

    async def _downstream(self, call: BidiCall) -> None:
        from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

        assert self.reader is not None
        text_parts: list[str] = []
        while True:
            data = await self.reader.read(256 * 1024)
            if not data:
                missed = self.pings - self.pongs >= self.front.max_missed_pongs
                why = "it missed 5 pongs" if missed else "its connection closed"
                raise BidiModelError(f"the container's WebSocket was lost: {why}", "StreamBroken")
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, TextMessage):
                    text_parts.append(event.data)
                    if event.message_finished:
                        whole = "".join(text_parts)
                        text_parts = []
                        error = _model_stream_error(whole)
                        if error is not None:
                            raise error
                    await call.send(event.data, complete=event.message_finished)
                elif isinstance(event, BytesMessage):
                    await call.send(bytes(event.data), complete=event.message_finished)
                elif isinstance(event, Ping):
                    self._send(event.response())
                elif isinstance(event, Pong):
                    self.pongs += 1
                elif isinstance(event, CloseConnection):
                    if not self.closed_by_us:
                        self._send(event.response())
                    if event.code != 1000:
                        raise BidiModelError(
                            f"the container closed the WebSocket with code {event.code}"
                            + (f": {event.reason}" if event.reason else ""),
                            "StreamBroken",
                        )
                    return

    def close_transport(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _model_stream_error(text: str) -> BidiModelError | None:
    """The container's error report: ``{"ModelStreamError": {"ErrorCode", "Message"}}``."""
    if not text.startswith("{") or "ModelStreamError" not in text:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    inner = body.get("ModelStreamError") if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        return None
    return BidiModelError(
        str(inner.get("Message", "")), str(inner.get("ErrorCode") or "ModelError")
    )
