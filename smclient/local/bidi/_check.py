"""``smclient local check-container --bidirectional URL``: checks a running container
against the bidirectional container contract (protocol.md §8), the way SageMaker uses it:

- ``ping``: ``GET /ping`` answers 200 (still required);
- ``upgrade``: a WebSocket to ``/invocations-bidirectional-stream`` (or ``--bidi-path``) is
  accepted, and ``upgrade time`` within 250 ms (the AWS sample's guidance);
- ``pong``: a WebSocket ping is answered (SageMaker pings every 60 s and closes after 5
  missed pongs);
- ``answer``: with ``--bidi-probe TEXT``, a text frame gets a frame back (else skipped);
- ``close``: a close (1000) is answered with a close.
"""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlsplit

from ..containers._check import CheckResult, Verdict

__all__ = ["check_bidi_container"]

UPGRADE_BUDGET_MS = 250.0


class _Socket:
    def __init__(self, host: str, port: int, timeout: float) -> None:
        from wsproto import ConnectionType, WSConnection

        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.host, self.port = host, port

    def send(self, event: Any) -> None:
        self.sock.sendall(self.ws.send(event))

    def next_event(self, kinds: tuple[type, ...]) -> Any:
        """The next event of one of ``kinds`` (pings are answered on the way); ``None``
        when the connection ends first. Raises ``TimeoutError`` past the socket timeout."""
        from wsproto.events import Ping

        while True:
            for event in self.ws.events():
                if isinstance(event, kinds):
                    return event
                if isinstance(event, Ping):
                    self.send(event.response())
            data = self.sock.recv(65536)
            if not data:
                return None
            self.ws.receive_data(data)

    def close(self) -> None:
        self.sock.close()


def _row(name: str, passed: bool | None, detail: str) -> CheckResult:
    verdict: Verdict = "SKIP" if passed is None else ("PASS" if passed else "FAIL")
    return CheckResult(name, verdict, detail)


def check_bidi_container(
    url: str,
    *,
    timeout: float = 10.0,
    path: str = "invocations-bidirectional-stream",
    probe: str | None = None,
) -> list[CheckResult] | None:
    """Run the bidirectional checks against the container at ``url``
    (``http://host:port``); ``None`` when it does not answer ``GET /ping`` at all.
    ``timeout``: seconds per step. ``path``: the WebSocket path (a model invocation
    path). ``probe``: a text message to send, expecting an answer.

    .. versionadded:: 0.2.0
    """
    from wsproto.events import (
        AcceptConnection,
        BytesMessage,
        CloseConnection,
        Ping,
        Pong,
        RejectConnection,
        Request,
        TextMessage,
    )

    from ..containers._client import ContainerClient, ContainerUnreachableError

    results: list[CheckResult] = []
    with ContainerClient(url, timeout=timeout) as client:
        start = time.monotonic()
        try:
            healthy = client.ping()
        except ContainerUnreachableError:
            return None
        took = (time.monotonic() - start) * 1000
        results.append(_row("ping", healthy, f"{'200' if healthy else 'not 200'} in {took:.0f} ms"))
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = "/" + path.lstrip("/")
    try:
        ws = _Socket(host, port, timeout)
    except OSError as exc:
        results.append(_row("upgrade", False, f"cannot connect: {exc}"))
        return results
    try:
        start = time.monotonic()
        ws.send(Request(host=f"{host}:{port}", target=target))
        answer = ws.next_event((AcceptConnection, RejectConnection))
        took = (time.monotonic() - start) * 1000
        if not isinstance(answer, AcceptConnection):
            status = getattr(answer, "status_code", "no answer")
            results.append(
                _row(
                    "upgrade",
                    False,
                    f"{target} answered {status} instead of 101: SageMaker reports this as "
                    "424 ModelError (Failed to establish WebSocket connection)",
                )
            )
            return results
        results.append(_row("upgrade", True, f"101 for {target}"))
        results.append(
            _row(
                "upgrade time",
                took <= UPGRADE_BUDGET_MS,
                f"{took:.0f} ms (accept within {UPGRADE_BUDGET_MS:.0f} ms)",
            )
        )
        ws.send(Ping(payload=b"smclient-check"))
        try:
            pong = ws.next_event((Pong,))
            results.append(
                _row("pong", pong is not None, "answered" if pong else "connection closed")
            )
        except TimeoutError:
            results.append(
                _row("pong", False, f"no pong within {timeout} s (SageMaker closes after 5)")
            )
        if probe is None:
            results.append(_row("answer", None, "no --bidi-probe message given"))
        else:
            ws.send(TextMessage(data=probe))
            try:
                got = ws.next_event((TextMessage, BytesMessage, CloseConnection))
                if isinstance(got, TextMessage | BytesMessage):
                    kind = "text" if isinstance(got, TextMessage) else "binary"
                    results.append(_row("answer", True, f"a {kind} frame of {len(got.data)}"))
                else:
                    results.append(_row("answer", False, "the container closed instead"))
            except TimeoutError:
                results.append(_row("answer", False, f"nothing within {timeout} s"))
        ws.send(CloseConnection(code=1000, reason="check done"))
        try:
            closed = ws.next_event((CloseConnection,))
            results.append(
                _row("close", closed is not None, "answered" if closed else "dropped instead")
            )
        except TimeoutError:
            results.append(_row("close", False, f"no close frame within {timeout} s"))
    except OSError as exc:
        results.append(_row("connection", False, f"the container stopped answering: {exc}"))
    finally:
        ws.close()
    return results
