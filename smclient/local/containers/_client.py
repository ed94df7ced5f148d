"""``ContainerClient``: a small HTTP client for a running bring-your-own model container.

It speaks the multi-model container contract (load, list, describe, unload, invoke: see
``protocol.md`` §3) and the single-model contract (``/ping``, ``/invocations``) the way
SageMaker does, and copes with what multi-model-server (the reference implementation)
does beyond the contract: pagination tokens on exactly-full pages, empty last pages,
describe answered as a one-element list, extra fields.

Errors::

    SMClientError
    └── ContainerError                  the container answered an error (``status``, ``message``)
        ├── ContainerProtocolError      the answer was not the contract's shape
        └── ContainerUnreachableError   no answer at all (``status`` 0): refused, reset...
            └── ContainerTimeoutError   no answer within the timeout (the call may have run)

``invoke`` and ``invoke_single`` never raise :class:`ContainerError` for an HTTP status:
they return every answer as a :class:`ContainerResponse`; they raise only
:class:`ContainerUnreachableError`.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
from typing_extensions import Self

from smclient import SMClientError

__all__ = [
    "ContainerClient",
    "ContainerError",
    "ContainerModel",
    "ContainerModelPage",
    "ContainerProtocolError",
    "ContainerResponse",
    "ContainerTimeoutError",
    "ContainerUnreachableError",
]

_MAX_ERROR_TEXT = 500  # characters of an error body kept in a message
_CHUNK = 64 * 1024


class ContainerError(SMClientError):
    """The container answered a management call (load, list, describe, unload) with a
    non-2xx status. ``status`` is the HTTP status, ``message`` the container's message
    (the ``message`` field of a ``{"code", "type", "message"}`` body, else the text).

    .. versionadded:: 0.1.0
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def __str__(self) -> str:
        return f"container answered HTTP {self.status}: {self.message}"


class ContainerProtocolError(ContainerError):
    """The container answered, but not in the contract's shape (for example a describe
    answer without ``modelName``). ``status`` is the HTTP status it answered with.

    .. versionadded:: 0.1.0
    """


class ContainerUnreachableError(ContainerError):
    """No HTTP answer: connection refused, reset or closed before a response.
    ``status`` is always 0.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str) -> None:
        super().__init__(0, message)

    def __str__(self) -> str:
        return f"container unreachable: {self.message}"


class ContainerTimeoutError(ContainerUnreachableError):
    """No complete answer within the client's timeout. The request may have reached the
    container, so a load or an invocation may have happened.

    .. versionadded:: 0.1.0
    """


@attrs.frozen
class ContainerModel:
    """A model the container reports as loaded: its ``name`` (``modelName``) and
    ``url`` (``modelUrl``, the path it was loaded from).

    .. versionadded:: 0.1.0
    """

    name: str
    url: str


@attrs.frozen
class ContainerModelPage:
    """One page of ``GET /models``: the models and the ``nextPageToken`` (``None`` when
    the container sent none).

    .. versionadded:: 0.1.0
    """

    models: tuple[ContainerModel, ...]
    next_page_token: str | None


def _body_repr(body: bytes) -> str:
    return f"<{len(body)} bytes>"


def _hidden(value: str | None) -> str:
    return "None" if value is None else "<hidden>"


@attrs.frozen
class ContainerResponse:
    """The container's answer to an invocation, whatever its status.

    ``headers`` holds every response header (lower-case names). The repr never shows
    the body or the custom attributes.

    .. versionadded:: 0.1.0
    """

    status: int
    body: bytes = attrs.field(repr=_body_repr)
    content_type: str | None
    custom_attributes: str | None = attrs.field(repr=_hidden)
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


def _error_message(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        text = data["message"]
    text = text.strip() or "(empty body)"
    return text[:_MAX_ERROR_TEXT]


def _model(data: Any, status: int) -> ContainerModel:
    if isinstance(data, dict):
        name, url = data.get("modelName"), data.get("modelUrl")
        if isinstance(name, str) and isinstance(url, str):
            return ContainerModel(name, url)
    raise ContainerProtocolError(status, "expected an object with modelName and modelUrl")


@attrs.define
class ContainerClient:
    """A client for a model container at ``base_url`` (``http://host:port``, optionally
    with a path prefix; ``https`` works too).

    ``timeout`` (seconds, default 70, as SageMaker's guide advises for the runtime) bounds
    every call from connecting to the last byte of the answer. Each call uses its own
    connection, so one client is safe to share between threads and a request is never
    silently re-sent on a stale keep-alive connection. Use as a context manager or call
    :meth:`close`; calls after ``close`` raise ``RuntimeError``.

    .. versionadded:: 0.1.0
    """

    _base_url: str
    _timeout: float = attrs.field(default=70.0, kw_only=True)
    _scheme: str = attrs.field(init=False)
    _host: str = attrs.field(init=False)
    _port: int | None = attrs.field(init=False)
    _prefix: str = attrs.field(init=False)
    _closed: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self._base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port], got {self._base_url!r}")
        if not self._timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self._timeout!r}")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")

    @property
    def base_url(self) -> str:
        """The container's address as given (``http(s)://host[:port][/prefix]``)."""
        return self._base_url

    # -- single-model and health ------------------------------------------------------

    def ping(self) -> bool:
        """``GET /ping``: True on 200, False on any other status. Raises
        :class:`ContainerUnreachableError` when the container does not answer."""
        return self._request("GET", "/ping")[0] == 200

    def invoke_single(
        self,
        body: bytes,
        *,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ContainerResponse:
        """``POST /invocations`` (single-model contract); every status is returned."""
        headers = _invoke_headers(content_type, accept, custom_attributes, None, extra_headers)
        return self._response(*self._request("POST", "/invocations", body, headers))

    # -- multi-model contract ---------------------------------------------------------

    def load(self, model_name: str, url: str) -> None:
        """``POST /models`` with the JSON body ``{"model_name", "url"}``.
        Raises :class:`ContainerError` (409 already loaded, 507 out of memory...)."""
        body = json.dumps({"model_name": model_name, "url": url}).encode()
        self._checked("POST", "/models", body, {"Content-Type": "application/json"})

    def list_page(
        self, next_page_token: str | None = None, *, limit: int | None = None
    ) -> ContainerModelPage:
        """One ``GET /models`` page. ``limit`` (sent only when given) asks the container
        for a page size; SageMaker itself sends only ``next_page_token``."""
        query = {}
        if next_page_token is not None:
            query["next_page_token"] = next_page_token
        if limit is not None:
            query["limit"] = str(limit)
        path = "/models" + ("?" + urllib.parse.urlencode(query) if query else "")
        status, body, _ = self._checked("GET", path)
        data = _json(body, status)
        models = data.get("models") if isinstance(data, dict) else None
        if not isinstance(models, list):
            raise ContainerProtocolError(status, "expected an object with a models list")
        token = data.get("nextPageToken")
        if token is not None and not isinstance(token, (str, int)):
            raise ContainerProtocolError(status, "nextPageToken is not a string")
        return ContainerModelPage(
            tuple(_model(item, status) for item in models),
            None if token is None or token == "" else str(token),
        )

    def iter_pages(
        self, *, limit: int | None = None, max_pages: int = 1000
    ) -> Iterator[ContainerModelPage]:
        """Every page of ``GET /models``, following ``nextPageToken`` until it is
        absent, repeats a token seen before, or a page is empty (multi-model-server sends
        a token on every exactly-full page, so its last page is empty), and for at most
        ``max_pages`` pages: a container that always sends a new token cannot loop."""
        seen: set[str] = set()
        token: str | None = None
        for _ in range(max_pages):
            page = self.list_page(token, limit=limit)
            yield page
            token = page.next_page_token
            if token is None or token in seen or not page.models:
                return
            seen.add(token)

    def list_models(
        self, *, limit: int | None = None, max_pages: int = 1000
    ) -> list[ContainerModel]:
        """Every loaded model, each once, in the container's order (see :meth:`iter_pages`
        for how paging always ends). Stops early when a page brings no new model."""
        found: dict[str, ContainerModel] = {}
        for page in self.iter_pages(limit=limit, max_pages=max_pages):
            before = len(found)
            for model in page.models:
                found.setdefault(model.name, model)
            if page.models and len(found) == before:
                break  # a page of repeats: the container ignores the token
        return list(found.values())

    def describe(self, model_name: str) -> ContainerModel:
        """``GET /models/{name}``. Extra fields are ignored; a one-element JSON list (as
        some multi-model-server versions answer) is accepted. 404: not loaded."""
        status, body, _ = self._checked("GET", "/models/" + _quote(model_name))
        data = _json(body, status)
        if isinstance(data, list):
            if len(data) != 1:
                raise ContainerProtocolError(status, f"expected one model, got {len(data)}")
            data = data[0]
        return _model(data, status)

    def unload(self, model_name: str) -> None:
        """``DELETE /models/{name}``; the container frees the model's resources before
        it answers. Raises :class:`ContainerError` (404 when not loaded)."""
        self._checked("DELETE", "/models/" + _quote(model_name))

    def invoke(
        self,
        model_name: str,
        body: bytes,
        *,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        target_model: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ContainerResponse:
        """``POST /models/{name}/invoke`` forwarding ``Content-Type``, ``Accept``,
        ``X-Amzn-SageMaker-Custom-Attributes`` and ``X-Amzn-SageMaker-Target-Model``
        (plus ``extra_headers``). Every status is returned (404 not loaded, 507 out of
        memory, 503 no worker...)."""
        headers = _invoke_headers(
            content_type, accept, custom_attributes, target_model, extra_headers
        )
        path = f"/models/{_quote(model_name)}/invoke"
        return self._response(*self._request("POST", path, body, headers))

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Mark the client closed (it holds no connection between calls)."""
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------

    def _response(self, status: int, body: bytes, headers: dict[str, str]) -> ContainerResponse:
        return ContainerResponse(
            status,
            body,
            headers.get("content-type"),
            headers.get("x-amzn-sagemaker-custom-attributes"),
            headers,
        )

    def _checked(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, dict[str, str]]:
        status, data, answer_headers = self._request(method, path, body, headers)
        if not 200 <= status < 300:
            raise ContainerError(status, _error_message(data))
        return status, data, answer_headers

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, dict[str, str]]:
        if self._closed:
            raise RuntimeError("ContainerClient is closed")
        deadline = time.monotonic() + self._timeout
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self._timeout)
        where = f"{method} {self._prefix}{path.split('?')[0]}"
        try:
            # One connection per call: say so, so the container need not wait for more.
            all_headers = {"Connection": "close", **(headers or {})}
            if body is not None or method == "POST":
                all_headers.setdefault("Content-Length", str(len(body or b"")))
            conn.request(method, self._prefix + path, body=body, headers=all_headers)
            # Keep the socket: http.client drops conn.sock when the answer ends with close.
            sock = conn.sock
            _shrink_timeout(sock, deadline)
            response = conn.getresponse()
            data = _read_body(sock, response, deadline)
            answer = {k.lower(): v for k, v in response.getheaders()}
            return response.status, data, answer
        except TimeoutError as exc:
            raise ContainerTimeoutError(f"{where}: no answer within {self._timeout:g} s") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ContainerUnreachableError(f"{where}: {type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()


def _quote(model_name: str) -> str:
    if not model_name:
        raise ValueError("model_name must not be empty")
    return urllib.parse.quote(model_name, safe="")


def _json(body: bytes, status: int) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ContainerProtocolError(status, "the answer is not JSON") from exc


def _invoke_headers(
    content_type: str | None,
    accept: str | None,
    custom_attributes: str | None,
    target_model: str | None,
    extra: Mapping[str, str] | None,
) -> dict[str, str]:
    headers = dict(extra or {})
    for name, value in (
        ("Content-Type", content_type),
        ("Accept", accept),
        ("X-Amzn-SageMaker-Custom-Attributes", custom_attributes),
        ("X-Amzn-SageMaker-Target-Model", target_model),
    ):
        if value is not None:
            headers[name] = value
    return headers


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def _shrink_timeout(sock: socket.socket | None, deadline: float) -> None:
    # The socket timeout bounds each read; shrinking it to what is left of the call's
    # budget bounds the whole call, so a container trickling bytes cannot stretch it.
    if sock is not None:
        sock.settimeout(_remaining(deadline))


def _read_body(
    sock: socket.socket | None, response: http.client.HTTPResponse, deadline: float
) -> bytes:
    chunks: list[bytes] = []
    while True:
        _shrink_timeout(sock, deadline)
        # read1: at most one system call, so the deadline is checked between them.
        chunk = response.read1(_CHUNK)
        if not chunk:
            if response.length:  # the container closed before the Content-Length was sent
                raise http.client.IncompleteRead(b"".join(chunks), response.length)
            return b"".join(chunks)
        chunks.append(chunk)
