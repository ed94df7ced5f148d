"""``FakeContainer``: a loopback model container that behaves like multi-model-server.

It serves the multi-model contract of protocol.md §3 (or, with ``single_model=True``,
``/ping`` and ``/invocations``) with the reference implementation's quirks: the load
parameters come from a JSON body only with ``Content-Type: application/json`` (else from
the query string), pages are integer offsets with a ``limit`` (at most 100) and a token on
every exactly-full page, describe answers a one-element list with extra fields, bodies
over 6.5 MB get an empty 413. Switches make it misbehave so that a checker's verdicts can
be tested. Invocations echo the body, its content type and the custom attributes.

Use as a context manager: it listens on 127.0.0.1 (port 0) and, on exit, stops and joins
every thread it started.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Collection, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
from typing_extensions import Self

MAX_BODY = 6_815_744  # 6.5 MiB: multi-model-server's default max request size
STALL_LIMIT = 10.0  # seconds a stalled route waits at most (tests time out long before)

# Events whose status a test can override with ``statuses={event: status}``.
EVENTS = frozenset(
    {
        "ping",
        "load",  # a load that would succeed (200)
        "load_conflict",  # the model is already registered (409)
        "load_bad_request",  # model_name or url missing (400)
        "out_of_memory",  # the memory budget is exceeded (507)
        "list",
        "describe",
        "describe_missing",  # 404
        "unload",
        "unload_missing",  # 404
        "invoke",
        "invoke_missing",  # 404
        "invocations",
    }
)
PAGINATION = frozenset({"offset", "none", "repeat_token", "endless"})


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops bursts of connects (1 s SYN retries)
    daemon_threads = False  # server_close() joins every handler thread


@attrs.frozen
class Request:
    """A request that reached the fake: method, path (without query), query, lower-case
    headers and body."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)


@attrs.define
class _Model:
    url: str
    size: int
    has_worker: bool = True


class FakeContainer:
    """A reference-like model container on loopback.

    Conforming settings: ``memory_budget`` (total size units, ``None`` unlimited),
    ``model_size`` (units per model, or ``sizes`` by model name), ``known_urls`` (when
    given, loading any other url answers 404 as a missing model directory would),
    ``describe_as_list`` (multi-model-server 1.1 answers a one-element list).

    Misbehaviour switches:
    ``json_body=False`` reads load parameters from the query string only (so a JSON load
    answers 400 "Parameter url is required."); ``leak_on_unload`` frees no memory on
    DELETE; ``unload_keeps_model`` answers DELETE 200 but keeps the model;
    ``pagination`` is ``"offset"`` (reference), ``"none"`` (one page, no token),
    ``"repeat_token"`` (always the first page and token ``"0"``) or ``"endless"`` (a new
    token every time, always the first page); ``stuck_on_507`` leaves a model that got 507
    registered with no worker (invoke 503, load 409, DELETE clears) as the reference
    does; ``statuses`` overrides the status of an event (see ``EVENTS``) and ``bodies``
    its body (raw bytes); ``stall`` and
    ``drop`` name events that never answer or close the connection without an answer;
    ``die_after`` names an event after which every request is dropped (a crash);
    ``list_script`` answers ``GET /models`` from a function of the query (any JSON body).

    Model directories: with ``check_model_dirs`` a load reads the ``url`` as a directory
    (``mounts`` maps a path prefix inside the container, e.g. ``/opt/ml/models``, to the
    host folder mounted there): a missing directory answers 404, one holding a file named
    ``OOM`` answers 507 (as multi-model-server does when ``model_fn`` raises MemoryError);
    ``model_files[name]`` records the files it held. Invocations then answer the body
    prefixed with the model directory's ``answer.txt`` when it has one.

    Stateful sessions (``sessions=True``, protocol.md §4): a request with
    ``X-Amzn-SageMaker-Session-Id: NEW_SESSION`` opens a session (its body is kept in
    ``session_bodies``) and answers ``X-Amzn-SageMaker-Session-Id: <id>; Expires=...``
    (``session_ttl`` seconds, ``session_header`` overrides the whole value); a request with
    the id and a body ``{"requestType": "CLOSE"}`` closes it and answers
    ``X-Amzn-SageMaker-Closed-Session-Id: <id>``; other requests with the id are echoed
    with ``X-Fake-Session: <id>``; an unknown id answers 400 "session not found".
    """

    def __init__(
        self,
        *,
        single_model: bool = False,
        memory_budget: int | None = None,
        model_size: int = 1,
        sizes: Mapping[str, int] | None = None,
        known_urls: Collection[str] | None = None,
        describe_as_list: bool = True,
        json_body: bool = True,
        leak_on_unload: bool = False,
        unload_keeps_model: bool = False,
        pagination: str = "offset",
        stuck_on_507: bool = False,
        statuses: Mapping[str, int] | None = None,
        bodies: Mapping[str, bytes] | None = None,
        stall: Collection[str] = (),
        drop: Collection[str] = (),
        die_after: str | None = None,
        list_script: Callable[[dict[str, str]], bytes] | None = None,
        port: int = 0,
        check_model_dirs: bool = False,
        mounts: Mapping[str, str] | None = None,
        sessions: bool = False,
        session_ttl: float = 1200.0,
        session_header: str | None = None,
    ) -> None:
        named = {
            *(statuses or ()),
            *(bodies or ()),
            *stall,
            *drop,
            *([die_after] if die_after else []),
        }
        unknown = named - EVENTS
        if unknown or pagination not in PAGINATION:
            raise ValueError(f"unknown event or pagination: {sorted(unknown)} {pagination!r}")
        self.single_model = single_model
        self.memory_budget = memory_budget
        self.model_size = model_size
        self.sizes = dict(sizes or {})
        self.known_urls = None if known_urls is None else set(known_urls)
        self.describe_as_list = describe_as_list
        self.json_body = json_body
        self.leak_on_unload = leak_on_unload
        self.unload_keeps_model = unload_keeps_model
        self.pagination = pagination
        self.stuck_on_507 = stuck_on_507
        self.statuses = dict(statuses or {})
        self.bodies = dict(bodies or {})
        self.stall = frozenset(stall)
        self.drop = frozenset(drop)
        self.die_after = die_after
        self.dead = threading.Event()
        self.list_script = list_script
        self.port = port
        self.check_model_dirs = check_model_dirs
        self.mounts = dict(mounts or {})
        self.model_files: dict[str, list[str]] = {}
        self.sessions = sessions
        self.session_ttl = session_ttl
        self.session_header = session_header
        self.open_sessions: set[str] = set()
        self.session_bodies: list[bytes] = []
        self.requests: list[Request] = []
        self.memory_used = 0
        self._models: dict[str, _Model] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- what tests look at ----------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeContainer is not started: use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def models(self) -> dict[str, str]:
        """Registered models (name -> url), including any left without a worker."""
        with self._lock:
            return {name: model.url for name, model in self._models.items()}

    def add_model(self, name: str, url: str | None = None) -> None:
        """Register a model directly (no request), using no memory."""
        with self._lock:
            self._models[name] = _Model(url or f"/opt/ml/models/{name}/model", 0)

    def reset(self) -> None:
        """Forget models, requests and the list script (to reuse one fake across examples)."""
        with self._lock:
            self._models.clear()
            self.requests.clear()
            self.memory_used = 0
            self.list_script = None

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 5.0  # an idle keep-alive connection cannot hold shutdown forever

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_DELETE(self) -> None:
                fake._handle(self, "DELETE")

            def do_PUT(self) -> None:
                fake._handle(self, "PUT")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closing.set()  # releases stalled handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(STALL_LIMIT)

    # -- the HTTP side ----------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urllib.parse.urlsplit(handler.path)
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)  # read even when too big: a reset confuses clients
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.requests.append(Request(method, parts.path, query, headers, body))
        if self.dead.is_set():  # a crashed container: every connection closes unanswered
            handler.close_connection = True
            return
        if length > MAX_BODY:
            self._send(handler, 413, b"", {})
            return
        event, status, payload, extra = self._route(method, parts.path, query, headers, body)
        if event in self.stall:
            self._closing.wait(STALL_LIMIT)
            handler.close_connection = True
            return
        if event in self.drop:
            handler.close_connection = True
            return
        if event == self.die_after:
            self.dead.set()
        if event in self.statuses:
            status = self.statuses[event]
            if not 200 <= status < 300:
                payload = _error(status, f"status overridden for {event}")
        payload = self.bodies.get(event, payload)
        self._send(handler, status, payload, extra)

    def _send(
        self, handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]
    ) -> None:
        handler.send_response(status)
        if body and "Content-Type" not in headers:
            handler.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _route(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[str, int, bytes, dict[str, str]]:
        segments = [urllib.parse.unquote(s) for s in path.strip("/").split("/")]
        if method == "GET" and path == "/ping":
            return "ping", 200, b'{"status": "Healthy"}', {}
        if self.single_model:
            if method == "POST" and path == "/invocations":
                with self._lock:
                    return ("invocations", *self._answer(None, headers, body))
            return "", 404, _error(404, "Resource not found"), {}
        with self._lock:
            if path == "/models" and method == "POST":
                return self._load(query, headers, body)
            if path == "/models" and method == "GET":
                return self._list(query)
            if len(segments) == 2 and segments[0] == "models" and method in ("GET", "DELETE"):
                return self._describe(segments[1]) if method == "GET" else self._unload(segments[1])
            if len(segments) == 3 and segments[0] == "models" and segments[2] == "invoke":
                if method == "POST":
                    return self._invoke(segments[1], headers, body)
                return "", 405, _error(405, "Method not allowed"), {}
        return "", 404, _error(404, "Resource not found"), {}

    # -- the multi-model routes (called with the lock held) -----------------------------

    def _load(
        self, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[str, int, bytes, dict[str, str]]:
        params: dict[str, Any] = dict(query)
        if self.json_body and headers.get("content-type", "").startswith("application/json"):
            try:
                params = json.loads(body)
            except ValueError:
                return "load_bad_request", 500, _error(500, "Invalid JSON body"), {}
            if not isinstance(params, dict):
                return "load_bad_request", 400, _error(400, "Invalid request body"), {}
        name, url = params.get("model_name"), params.get("url")
        if not url:
            return "load_bad_request", 400, _error(400, "Parameter url is required."), {}
        if not name:
            return "load_bad_request", 400, _error(400, "Parameter model_name is required."), {}
        name, url = str(name), str(url)
        if name in self._models:
            return "load_conflict", 409, _error(409, f"Model {name} is already registered."), {}
        if self.known_urls is not None and url not in self.known_urls:
            return "load", 404, _error(404, f"Model not found in model store: {url}"), {}
        if self.check_model_dirs:
            where = self._host_path(url)
            if where is None or not where.is_dir():
                return "load", 404, _error(404, f"Model directory not found: {url}"), {}
            if (where / "OOM").exists():
                return "out_of_memory", 507, _error(507, "System out of memory"), {}
            self.model_files[name] = sorted(
                str(f.relative_to(where)) for f in where.rglob("*") if f.is_file()
            )
        size = self.sizes.get(name, self.model_size)
        if self.memory_budget is not None and self.memory_used + size > self.memory_budget:
            if self.stuck_on_507:
                self._models[name] = _Model(url, 0, has_worker=False)
            return "out_of_memory", 507, _error(507, "Memory not enough to load the model"), {}
        self._models[name] = _Model(url, size)
        self.memory_used += size
        message = f'Model "{name}" Version: 1.0 registered with 1 initial workers'
        return "load", 200, json.dumps({"status": message}).encode(), {}

    def _list(self, query: dict[str, str]) -> tuple[str, int, bytes, dict[str, str]]:
        if self.list_script is not None:
            return "list", 200, self.list_script(query), {}
        try:
            limit = int(query.get("limit", "100"))
            offset = int(query.get("next_page_token", "0"))
        except ValueError:
            return "list", 400, _error(400, "Invalid limit or next_page_token"), {}
        limit = 100 if limit > 100 or limit < 0 else limit
        offset = max(offset, 0)
        names = sorted(self._models)
        token: str | None = None
        if self.pagination == "none":
            page = names
        elif self.pagination in ("repeat_token", "endless"):
            page = names[:limit]
            token = "0" if self.pagination == "repeat_token" else str(offset + limit)
        else:
            last = offset + limit
            page = names[offset:last]
            if last <= len(names):  # the reference's quirk: a token on an exactly-full page
                token = str(last)
        answer: dict[str, Any] = {
            "models": [{"modelName": n, "modelUrl": self._models[n].url} for n in page]
        }
        if token is not None:
            answer["nextPageToken"] = token
        return "list", 200, json.dumps(answer).encode(), {}

    def _describe(self, name: str) -> tuple[str, int, bytes, dict[str, str]]:
        model = self._models.get(name)
        if model is None:
            return "describe_missing", 404, _error(404, f"Model not found: {name}"), {}
        workers = [{"id": "9000", "status": "READY", "gpu": False}] if model.has_worker else []
        item = {
            "modelName": name,
            "modelVersion": "1.0",
            "modelUrl": model.url,
            "runtime": "python",
            "minWorkers": 1,
            "maxWorkers": 1,
            "batchSize": 1,
            "maxBatchDelay": 100,
            "workers": workers,
        }
        answer: Any = [item] if self.describe_as_list else item
        return "describe", 200, json.dumps(answer).encode(), {}

    def _unload(self, name: str) -> tuple[str, int, bytes, dict[str, str]]:
        model = self._models.get(name)
        if model is None:
            return "unload_missing", 404, _error(404, f"Model not found: {name}"), {}
        if not self.unload_keeps_model:
            del self._models[name]
        if not self.leak_on_unload and not self.unload_keeps_model:
            self.memory_used -= model.size
        return "unload", 200, json.dumps({"status": f'Model "{name}" unregistered'}).encode(), {}

    def _invoke(
        self, name: str, headers: dict[str, str], body: bytes
    ) -> tuple[str, int, bytes, dict[str, str]]:
        model = self._models.get(name)
        if model is None:
            return "invoke_missing", 404, _error(404, f"Model not found: {name}"), {}
        if not model.has_worker:
            return "invoke", 503, _error(503, "No worker is available to serve request"), {}
        return ("invoke", *self._answer(model, headers, body))

    def _host_path(self, url: str) -> Path | None:
        for inside, host in self.mounts.items():
            if url == inside or url.startswith(inside.rstrip("/") + "/"):
                return Path(host) / url[len(inside) :].lstrip("/")
        return Path(url) if not self.mounts else None

    def _answer(
        self, model: _Model | None, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        prefix = b""
        if model is not None and self.check_model_dirs:
            where = self._host_path(model.url)
            if where is not None and (where / "answer.txt").is_file():
                prefix = (where / "answer.txt").read_bytes()
        session = headers.get("x-amzn-sagemaker-session-id")
        if not self.sessions or session is None:
            status, echoed, extra = self._echo(headers, body)
            return status, prefix + echoed, extra
        if session == "NEW_SESSION":
            session_id = uuid.uuid4().hex
            self.open_sessions.add(session_id)
            self.session_bodies.append(body)
            expires = time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + self.session_ttl)
            )
            value = self.session_header or f"{session_id}; Expires={expires}"
            answer = json.dumps({"opened": session_id}).encode()
            return (
                200,
                answer,
                {"Content-Type": "application/json", "X-Amzn-SageMaker-Session-Id": value},
            )
        if session not in self.open_sessions:
            return 400, _error(400, f"session not found: {session}"), {}
        try:
            closing = json.loads(body).get("requestType") == "CLOSE"
        except (ValueError, AttributeError):
            closing = False
        if closing:
            self.open_sessions.discard(session)
            answer = json.dumps({"closed": session}).encode()
            return (
                200,
                answer,
                {"Content-Type": "application/json", "X-Amzn-SageMaker-Closed-Session-Id": session},
            )
        status, echoed, extra = self._echo(headers, body)
        return status, prefix + echoed, {**extra, "X-Fake-Session": session}

    def _echo(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes, dict[str, str]]:
        extra = {"Content-Type": headers.get("content-type", "application/octet-stream")}
        if "x-amzn-sagemaker-custom-attributes" in headers:
            extra["X-Amzn-SageMaker-Custom-Attributes"] = headers[
                "x-amzn-sagemaker-custom-attributes"
            ]
        return 200, body, extra


def _error(status: int, message: str) -> bytes:
    kinds = {
        400: "BadRequestException",
        404: "ModelNotFoundException",
        409: "ConflictStatusException",
        503: "ServiceUnavailableException",
        507: "InsufficientMemoryException",
    }
    kind = kinds.get(status, "InternalServerException")
    return json.dumps({"code": status, "type": kind, "message": message}).encode()
