"""The fast transport: the three runtime operations signed (SigV4, service ``sagemaker``) and
sent over pooled ``http.client`` connections, without botocore's client machinery.

Chosen by measurement (docs/transport.md, ``nox -s bench``): botocore's ``SigV4Auth`` costs
hundreds of microseconds per request (an ``AWSRequest``, header maps, URL parsing), awscrt's
signer about 75 us plus a native dependency, and this module's signer - the same algorithm
for the one request shape the runtime uses, with the derived signing key cached per day -
a few tens; ``http.client`` costs less CPU per request than urllib3 (which wraps it).

What stays botocore's, so that nothing a boto3 user relies on changes:

- credentials: the boto3 session's provider chain object, asked for its current keys on
  every request (refreshing credentials - assume-role, SSO, instance metadata - refresh);
- the endpoint URL (``endpoint_url=``, ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``,
  ``AWS_ENDPOINT_URL``, FIPS / dual-stack settings) and the ``User-Agent``: both read from
  one request the boto3 client prepares (and never sends) when the transport is built;
- the CA bundle (``AWS_CA_BUNDLE`` / ``ca_bundle``, else botocore's default);
- error parsing: a non-2xx answer is parsed by botocore's own response parser, then goes
  through the one translator (:func:`smclient._errors.http_error`);
- connection failures raise the botocore exceptions botocore would raise for them, so the
  translator and the retry rules treat both transports the same.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import select
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from ._request import (
    ASYNC,
    INVOKE,
    STREAM,
    AsyncResponse,
    InvokeResponse,
    Request,
    StreamResponse,
    request_id,
)

__all__ = ["FastTransport", "Signer", "Template", "capture_template"]

_PROBE = "smclient-probe"
_CAPTURE_ID = "smclient-capture-template"


class Template:
    """What botocore would put on every runtime request, captured once from the client."""

    def __init__(self, url: str, user_agent: str, sdk_request: str | None) -> None:
        # botocore's URL for the probe: everything before /endpoints/ is the endpoint URL
        # as resolved by botocore (rulesets, env vars, FIPS/dual-stack), path prefix included.
        base, _sep, _rest = url.partition(f"/endpoints/{_PROBE}/")
        parts = urlsplit(base)
        self.scheme = parts.scheme
        self.hostname = parts.hostname or ""
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.user_agent = user_agent
        self.sdk_request = sdk_request
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        default = {"http": 80, "https": 443}.get(self.scheme)
        self.host = host if self.port in (None, default) else f"{host}:{self.port}"


def capture_template(client: Any) -> Template:
    """Let the boto3 client prepare (not send) one ``InvokeEndpoint`` and keep its URL and
    ``User-Agent``. Raises what botocore raises (no region, no credentials...)."""
    from botocore.awsrequest import AWSResponse

    seen: dict[str, Any] = {}

    class _Empty:
        def stream(self, **_kwargs: Any) -> Iterator[bytes]:
            return iter(())

    def grab(request: Any, **_kwargs: Any) -> Any:
        seen["url"] = request.url
        seen["headers"] = dict(request.headers.items())
        return AWSResponse(request.url, 200, {}, _Empty())  # type: ignore[arg-type]

    event = "before-send.sagemaker-runtime.InvokeEndpoint"
    client.meta.events.register_first(event, grab, unique_id=_CAPTURE_ID)
    try:
        client.invoke_endpoint(EndpointName=_PROBE, Body=b"")
    finally:
        client.meta.events.unregister(event, unique_id=_CAPTURE_ID)
    headers = {
        k.lower(): v.decode("latin-1") if isinstance(v, bytes) else v
        for k, v in seen["headers"].items()
    }
    return Template(seen["url"], headers.get("user-agent", ""), headers.get("amz-sdk-request"))


def _uuid4() -> str:
    """``str(uuid.uuid4())`` at a third of its cost (the same random version-4 UUID)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Signer:
    """SigV4 for the runtime's requests (POST, no query string, a plain path), equal to
    botocore's ``SigV4Auth`` for them (tests compare the signatures). Keys come from the
    credentials object on every call; the derived key is cached per (secret, day)."""

    def __init__(self, credentials: Any, region: str, service: str = "sagemaker") -> None:
        self._credentials = credentials
        self._region = region
        self._service = service
        self._key: tuple[str, str, bytes] | None = None
        # (second, its X-Amz-Date) in one attribute: a thread never reads a new second
        # with the previous one's stamp.
        self._clock: tuple[int, str] = (-1, "")

    def _signing_key(self, secret: str, day: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == secret and cached[1] == day:
            return cached[2]
        key = hmac.new(f"AWS4{secret}".encode(), day.encode(), hashlib.sha256).digest()
        for part in (self._region, self._service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        self._key = (secret, day, key)
        return key

    def sign(
        self, path: str, host: str, headers: list[tuple[str, str]], body: bytes, now: float
    ) -> list[tuple[str, str]]:
        """The headers to add after ``headers``: ``X-Amz-Date``, ``X-Amz-Security-Token``
        (temporary credentials) and ``Authorization``."""
        if self._credentials is None:
            from botocore.exceptions import NoCredentialsError

            raise NoCredentialsError()
        frozen = self._credentials.get_frozen_credentials()
        second = int(now)
        cached, stamp = self._clock
        if second != cached:  # formatting the time costs more than the HMAC
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
            self._clock = (second, stamp)
        day = stamp[:8]
        added = [("X-Amz-Date", stamp)]
        if frozen.token:
            added.append(("X-Amz-Security-Token", frozen.token))
        canonical = {"host": host}
        for name, value in (*headers, *added):
            canonical[name.lower()] = " ".join(value.split())
        names = sorted(canonical)
        signed = ";".join(names)
        request = "\n".join(
            (
                "POST",
                path,
                "",
                "".join(f"{n}:{canonical[n]}\n" for n in names),
                signed,
                _sha256(body),
            )
        )
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{_sha256(request.encode())}"
        signature = hmac.new(
            self._signing_key(frozen.secret_key, day), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        added.append(
            (
                "Authorization",
                f"AWS4-HMAC-SHA256 Credential={frozen.access_key}/{scope}, "
                f"SignedHeaders={signed}, Signature={signature}",
            )
        )
        return added


def typed_error_answer(status: int, get: Any) -> bool:
    """Whether an answer cut short of its framing is still the error boto3 raises: botocore
    parses what arrived of an error answer (status >= 300) and takes its type from the
    ``x-amzn-ErrorType`` header, so a truncated 429 ``ModelNotReadyException`` is still
    retried. A truncated success (or an untyped error) is a ``ConnectionClosedError``."""
    return status >= 300 and get("x-amzn-errortype") is not None


class _Headers(dict[str, str]):
    """Response headers as botocore sees them through urllib3: names case-insensitive,
    a repeated header's values joined with ``", "`` (http.client's ``get`` keeps the first)."""

    def __init__(self, message: Any) -> None:
        super().__init__()
        for name, value in message.items():
            key = name.lower()
            self[key] = f"{self[key]}, {value}" if key in self else value

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name.lower() if isinstance(name, str) else name)


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """A pooled connection the server closed (readable while idle means EOF or junk)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):  # select() refuses descriptors >= FD_SETSIZE (1024)
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _w, _x = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class _Pool:
    """Idle keep-alive connections to one host, most recently used first. Never blocks:
    beyond ``maxsize`` idle connections, returned ones are closed."""

    def __init__(
        self,
        template: Template,
        ssl_context: ssl.SSLContext | None,
        connect: float,
        read: float,
        maxsize: int,
    ) -> None:
        self._template = template
        self._ssl = ssl_context
        self._connect = connect
        self._read = read
        self._maxsize = maxsize
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # Like urllib3's pools: idle sockets are closed when the pool is garbage-collected.
        weakref.finalize(self, _close_all, self._idle)

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self._ssl

    @property
    def settings(self) -> tuple[float, float, int]:
        return self._connect, self._read, self._maxsize

    def get(self) -> tuple[http.client.HTTPConnection, bool]:
        """A connection and whether it was reused."""
        if os.getpid() != self._pid:  # forked: the parent's sockets and lock are not ours
            # Another thread of the parent may have held the lock at the fork: it would stay
            # held forever here, so the child takes a new one instead of waiting on it.
            self._lock = threading.Lock()
            self._idle.clear()
            self._pid = os.getpid()
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                break
            if not _dropped(conn):
                return conn, True
            conn.close()
        t = self._template
        # The port always given: http.client would read a bare IPv6 host ("::1") as host
        # "::" and port 1.
        if t.scheme == "https":
            conn = http.client.HTTPSConnection(
                t.hostname, t.port or 443, timeout=self._connect, context=self._ssl
            )
        else:
            conn = http.client.HTTPConnection(t.hostname, t.port or 80, timeout=self._connect)
        return conn, False

    def connect(self, conn: http.client.HTTPConnection) -> None:
        conn.connect()
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock.settimeout(self._read)

    def put(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._maxsize and os.getpid() == self._pid:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle = self._idle[:]
            self._idle.clear()
        _close_all(idle)


def _close_all(connections: list[http.client.HTTPConnection]) -> None:
    for conn in connections[:]:
        conn.close()
    connections.clear()


def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    from botocore.httpsession import get_cert_path

    path: Any = get_cert_path(ca_bundle or True)  # type: ignore[arg-type]
    return ssl.create_default_context(cafile=path)


class FastTransport:
    """Sends runtime requests itself. Thread-safe; ``close()`` drops the idle connections."""

    name = "fast"

    def __init__(
        self,
        template: Template,
        *,
        signer: Signer | None,
        ca_bundle: str | None,
        connect_timeout: float,
        read_timeout: float,
        max_pool_connections: int,
    ) -> None:
        self._template = template
        self._signer = signer
        self._url = f"{template.scheme}://{template.host}{template.prefix}"
        context = _ssl_context(ca_bundle) if template.scheme == "https" else None
        from botocore.compat import HAS_CRT

        self._crt = bool(HAS_CRT) and signer is not None
        self._pool = _Pool(template, context, connect_timeout, read_timeout, max_pool_connections)
        self._paths: dict[str, str] = {}

    @property
    def url(self) -> str:
        return self._url

    def _canonical(self, path: str) -> str:
        """The path as SigV4 signs it - botocore's ``SigV4Auth``: dot segments and empty
        segments removed, then percent-encoded (again) except ``/`` and ``~``. Only an
        ``endpoint_url`` path prefix can hold such characters; a few paths per endpoint."""
        found = self._paths.get(path)
        if found is None:
            from urllib.parse import quote

            from botocore.utils import normalize_url_path

            found = self._paths[path] = quote(normalize_url_path(path), safe="/~")
        return found

    def headers(self, request: Request, path: str, now: float) -> list[tuple[str, str]]:
        """Every header after ``Host`` and ``Accept-Encoding``, in botocore's order."""
        t = self._template
        headers = [(header, value) for _param, header, value in request.fields]
        signed = headers[:]  # botocore never signs User-Agent and X-Amzn-Trace-Id
        headers.append(("User-Agent", t.user_agent))
        environ = os.environ
        if "AWS_LAMBDA_FUNCTION_NAME" in environ:  # botocore's recursion detection, per call
            trace = environ.get("_X_AMZN_TRACE_ID")
            if trace:
                from urllib.parse import quote

                headers.append(("X-Amzn-Trace-Id", quote(trace, safe="-=;:+&[]{}\"',")))
        if self._crt:
            # botocore signs with awscrt when it is installed, and that signer adds a
            # lowercase host header then the token before the date (the same signature).
            headers.append(("host", t.host))
        if self._signer is not None:
            added = self._signer.sign(self._canonical(path), t.host, signed, request.body, now)
            if self._crt and len(added) == 3:
                added = [added[1], added[0], added[2]]
            headers += added
        headers.append(("amz-sdk-invocation-id", _uuid4()))
        if t.sdk_request:
            headers.append(("amz-sdk-request", t.sdk_request))
        headers.append(("Content-Length", str(len(request.body))))
        return headers

    def encode(self, request: Request) -> bytes:
        """The request's bytes, signed now: request line, headers and body in one buffer (one
        write; http.client's putheader machinery and its two writes cost more CPU than the
        signature). Shared by the sync and the asyncio transports."""
        path = self._template.prefix + request.path
        lines = [f"POST {path} HTTP/1.1"]
        if not self._crt:
            lines.append(f"Host: {self._template.host}")
        lines.append("Accept-Encoding: identity")
        lines += [f"{name}: {value}" for name, value in self.headers(request, path, time.time())]
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1") + request.body

    def parse(
        self, request: Request, status: int, headers: Any, body: bytes
    ) -> InvokeResponse | AsyncResponse:
        """A complete answer (``headers``: case-insensitive ``get``/``items``) as the parsed
        response, or raise the botocore error boto3 would raise for it."""
        if status >= 300:
            from ._errors import http_error

            raise http_error(request.operation, status, headers, body)
        if request.operation == INVOKE:
            return InvokeResponse.from_headers(headers.get, body)
        assert request.operation == ASYNC
        return AsyncResponse.from_http(status, headers.get, body)

    @property
    def template(self) -> Template:
        return self._template

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self._pool.ssl_context

    @property
    def timeouts(self) -> tuple[float, float, int]:
        """Connect and read timeouts (seconds) and the pool size."""
        return self._pool.settings

    def send(self, request: Request) -> InvokeResponse | StreamResponse | AsyncResponse:
        """Send ``request``; raise botocore's exception for a failure or an error answer."""
        import botocore.exceptions as bce

        data = self.encode(request)
        conn, reused = self._pool.get()
        try:
            if not reused:
                try:
                    self._pool.connect(conn)
                except TimeoutError as exc:
                    raise bce.ConnectTimeoutError(endpoint_url=self._url, error=exc) from exc
                except OSError as exc:
                    raise bce.EndpointConnectionError(endpoint_url=self._url, error=exc) from exc
            sock = conn.sock
            assert sock is not None
            response = http.client.HTTPResponse(sock, method="POST")
            cut = False
            try:
                try:
                    try:
                        sock.sendall(data)
                    except (BrokenPipeError, ConnectionResetError):
                        # As urllib3: a server may answer from the headers alone (400, 403,
                        # 413) and close without reading the body; its answer is readable.
                        # If there is none, begin() fails and it is a ConnectionClosedError.
                        cut = True
                    response.begin()
                    if request.operation == STREAM and response.status < 300:
                        return self._stream(conn, response)
                    try:
                        body = response.read()
                    except http.client.IncompleteRead as exc:
                        if not typed_error_answer(response.status, response.msg.get):
                            raise
                        body = exc.partial
                        cut = True  # closed short of its framing: never reuse
                except TimeoutError as exc:
                    raise bce.ReadTimeoutError(endpoint_url=self._url, error=exc) from exc
                except (OSError, http.client.HTTPException) as exc:
                    raise bce.ConnectionClosedError(endpoint_url=self._url) from exc
            except BaseException:
                response.close()  # its file keeps the socket open after conn.close() otherwise
                raise
            status = response.status
        except BaseException:
            conn.close()
            raise
        if cut:
            conn.close()  # part of the request was never written: never reuse it
        else:
            self._release(conn, response)
        return self.parse(request, status, _Headers(response.msg), body)

    def _release(
        self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse
    ) -> None:
        if response.will_close:
            conn.close()
        else:
            self._pool.put(conn)

    def _stream(
        self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse
    ) -> StreamResponse:
        done = [False]

        def chunks() -> Iterator[bytes]:
            while True:
                data = response.read1(65536)
                if not data:
                    if response.length:  # Content-Length framing, closed short of it
                        raise http.client.IncompleteRead(b"", response.length)
                    done[0] = True
                    return
                yield data

        def close() -> None:
            if done[0] and not response.will_close:
                self._pool.put(conn)
            else:
                conn.close()  # unread bytes left: the connection cannot be reused
            response.close()

        get = _Headers(response.msg).get
        return StreamResponse(
            content_type=get("x-amzn-sagemaker-content-type"),
            invoked_production_variant=get("x-amzn-invoked-production-variant"),
            custom_attributes=get("x-amzn-sagemaker-custom-attributes"),
            request_id=request_id(get),
            chunks=chunks(),
            close=close,
        )

    def close(self) -> None:
        self._pool.close()
