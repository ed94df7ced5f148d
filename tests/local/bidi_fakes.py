"""A fake WebSocket container for the bidirectional container contract: answers ``GET
/ping`` (as SageMaker requires) and upgrades other requests to a WebSocket (wsproto), on
loopback port 0 in its own thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

Behaviour = Callable[["FakeSocket", Any], Awaitable[None]]


class FakeSocket:
    def __init__(self, ws: WSConnection, writer: asyncio.StreamWriter) -> None:
        self.ws = ws
        self.writer = writer
        self.pings = 0

    def send(self, event: Any) -> None:
        self.writer.write(self.ws.send(event))


class FakeContainer:
    """A WebSocket container: records the upgrade target, then runs ``behaviour`` for
    every message (``refuse`` answers the upgrade with that status instead)."""

    def __init__(self, behaviour: Behaviour, *, refuse: int | None = None, pong: bool = True):
        self.behaviour = behaviour
        self.refuse = refuse
        self.pong = pong
        self.targets: list[str] = []
        self.closes: list[int | None] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.AbstractServer
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()

        async def boot() -> None:
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(boot(), self.loop)
        ready.wait(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.readuntil(b"\r\n\r\n")
        if first.startswith(b"GET /ping "):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        ws = WSConnection(ConnectionType.SERVER)
        sock = FakeSocket(ws, writer)
        self.writers.append(writer)
        data = first
        try:
            while True:
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, Request):
                        self.targets.append(event.target)
                        if self.refuse:
                            sock.send(RejectConnection(status_code=self.refuse))
                            return
                        sock.send(AcceptConnection())
                    elif isinstance(event, Message):
                        await self.behaviour(sock, event)
                    elif isinstance(event, Ping):
                        sock.pings += 1
                        if self.pong:
                            sock.send(event.response())
                    elif isinstance(event, CloseConnection):
                        self.closes.append(event.code)
                        sock.send(event.response())
                        return
                data = await reader.read(65536)
                if not data:
                    return
        except (OSError, ConnectionError):
            return
        finally:
            writer.close()

    def stop(self) -> None:
        if self.loop.is_closed():
            return

        async def shutdown() -> None:
            self.server.close()
            for writer in self.writers:
                writer.close()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def echo(sock: FakeSocket, event: Any) -> None:
    if isinstance(event, TextMessage):
        sock.send(TextMessage(data=event.data.upper()))
    else:
        sock.send(BytesMessage(data=bytes(event.data) * 2))
