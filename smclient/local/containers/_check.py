"""``run_check``: exercise a running container against the multi-model contract.

Backs ``smclient local check-container URL``. Every route of protocol.md §3 is called the
way SageMaker calls it and the answers are compared with what SageMaker relies on; the
verdicts are printed as a table. The check loads models named ``<prefix>-1``,
``<prefix>-2``... from ``model_url`` and unloads every one of them before it returns.
With ``sessions`` it also checks the stateful-session contract of protocol.md §4 on a
loaded model. Checks that did not run are rows with ``SKIP`` and the reason.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable, Iterable
from typing import Literal, TextIO, TypeVar

import attrs

from ..sessions._store import parse_session_header
from ._client import (
    ContainerClient,
    ContainerError,
    ContainerModel,
    ContainerModelPage,
    ContainerProtocolError,
    ContainerResponse,
    ContainerUnreachableError,
    _error_message,
)

__all__ = [
    "DEFAULT_MODEL_URL",
    "CheckResult",
    "add_arguments",
    "check_container",
    "run_check",
    "run_from_args",
]

DEFAULT_MODEL_URL = "/opt/ml/models/{name}/model"
_OOM_CHECKS = ("load until 507", "507 leaves no model", "unload frees memory")
_UNLOAD_CHECKS = ("unload", "unload then describe", "unload then invoke", "unload again")
_SESSION_CHECKS = ("session open", "session use", "session close", "session closed id")
DEFAULT_OPEN_BODY = b'{"requestType": "NEW_SESSION"}'
DEFAULT_CLOSE_BODY = b'{"requestType": "CLOSE"}'
_SESSION = "X-Amzn-SageMaker-Session-Id"
_MAX_PAGES = 50  # far more than the check's models need: reaching it means a loop
_T = TypeVar("_T")

Verdict = Literal["PASS", "FAIL", "SKIP"]


@attrs.frozen
class CheckResult:
    """One row of the table: the check's ``name``, its ``result`` and a ``detail``.

    .. versionadded:: 0.1.0
    """

    name: str
    result: Verdict
    detail: str


class _Lost(Exception):
    """The container stopped answering altogether: the remaining checks cannot run."""


@attrs.define
class _Outcome:
    """What one call got: the HTTP status (0: no answer) and, on success, the value."""

    status: int
    value: object = None
    message: str = ""
    malformed: bool = False  # a 2xx whose body is not the contract's shape

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and not self.malformed

    def describe(self) -> str:
        text = f"HTTP {self.status}" + (" with a malformed body" if self.malformed else "")
        return text + (f": {self.message}" if self.message else "")


@attrs.define
class _Checker:
    _client: ContainerClient
    _model_url: str
    _prefix: str
    _invoke_body: bytes
    _content_type: str
    _oom_attempts: int
    _sessions: bool = False
    _open_body: bytes = DEFAULT_OPEN_BODY
    _close_body: bytes = DEFAULT_CLOSE_BODY
    results: list[CheckResult] = attrs.Factory(list)
    _loaded: dict[str, str] = attrs.Factory(dict)  # name -> url, what we must unload
    _counter: int = 0

    # -- plumbing -----------------------------------------------------------------------

    def record(self, name: str, passed: bool | None, detail: str) -> bool:
        verdict: Verdict = "SKIP" if passed is None else ("PASS" if passed else "FAIL")
        self.results.append(CheckResult(name, verdict, detail))
        return bool(passed)

    def call(self, fn: Callable[[], _T]) -> _Outcome:
        try:
            return _Outcome(200, fn())
        except ContainerUnreachableError as exc:
            # Only this call may have failed: give up only if the container is gone.
            try:
                self._client.ping()
            except ContainerUnreachableError:
                raise _Lost(exc.message) from exc
            return _Outcome(0, message=exc.message)
        except ContainerProtocolError as exc:
            return _Outcome(exc.status, message=exc.message, malformed=True)
        except ContainerError as exc:
            return _Outcome(exc.status, message=exc.message)

    def expect(self, name: str, outcome: _Outcome, status: int, why: str = "") -> bool:
        passed = outcome.ok if status == 200 else outcome.status == status
        detail = (
            f"HTTP {outcome.status}"
            if passed
            else f"expected {status}, got "
            + (outcome.describe() if outcome.status else f"no answer ({outcome.message})")
        )
        return self.record(name, passed, detail + (f" ({why})" if why and not passed else ""))

    def new_name(self) -> tuple[str, str]:
        self._counter += 1
        name = f"{self._prefix}-{self._counter}"
        return name, self._model_url.replace("{name}", name)

    def load(self, name: str, url: str) -> _Outcome:
        outcome = self.call(lambda: self._client.load(name, url))
        if outcome.ok:
            self._loaded[name] = url
        return outcome

    # -- the checks ---------------------------------------------------------------------

    def run(self) -> None:
        self.clear_leftovers()
        first, first_url = self.new_name()
        outcome = self.load(first, first_url)
        loaded = self.expect("load", outcome, 200, _load_hint(outcome.status, first_url))
        if loaded:
            self.check_describe(first, first_url)
            self.expect("load again", self.load(first, first_url), 409, "already loaded")
        else:
            self.skip(["describe", "load again"], "load failed")
        self.expect("describe unknown", self.call(lambda: self.describe(self.missing)), 404)
        if loaded:
            self.check_invoke(first)
        else:
            self.skip(["invoke"], "load failed")
        if not self._sessions:
            self.skip(_SESSION_CHECKS, "not asked for (--sessions checks stateful sessions)")
        elif loaded:
            self.check_sessions(first)
        else:
            self.skip(_SESSION_CHECKS, "load failed")
        self.expect("invoke unknown", self.invoke(self.missing), 404)
        names = [first] if loaded else []
        for _ in range(3):  # four models: pages of 2 end on an exactly-full page
            name, url = self.new_name()
            if self.load(name, url).ok:
                names.append(name)
        self.check_list("list", names, None)
        self.check_list("list pages of 2", names, 2)
        if loaded:
            self.check_507(names[1:])
            self.check_unload(first)
        else:
            self.skip(
                [*_OOM_CHECKS, *_UNLOAD_CHECKS],
                "load failed",
            )
        self.cleanup()

    @property
    def missing(self) -> str:
        return f"{self._prefix}-not-loaded"

    def describe(self, name: str) -> ContainerModel:
        return self._client.describe(name)

    def invoke(self, name: str, body: bytes | None = None, session: str | None = None) -> _Outcome:
        outcome = self.call(
            lambda: self._client.invoke(
                name,
                self._invoke_body if body is None else body,
                content_type=self._content_type,
                target_model=f"{name}.tar.gz",
                extra_headers={_SESSION: session} if session else None,
            )
        )
        response = outcome.value
        if isinstance(response, ContainerResponse):
            message = "" if response.ok else _error_message(response.body)
            return _Outcome(response.status, response, message)
        return outcome

    def check_sessions(self, name: str) -> None:
        """The stateful-session contract (protocol.md §4) on the loaded model ``name``."""
        opened = self.invoke(name, self._open_body, "NEW_SESSION")
        header = None
        if isinstance(opened.value, ContainerResponse):
            headers = opened.value.headers
            header = headers.get("x-amzn-sagemaker-session-id") or headers.get(
                "x-amzn-sagemaker-new-session-id"
            )
        session_id = self._check_open(opened, header)
        if session_id is None:
            self.skip(_SESSION_CHECKS[1:], "no session was opened")
            return
        self.expect("session use", self.invoke(name, None, session_id), 200)
        closed = self.invoke(name, self._close_body, session_id)
        answered = None
        if isinstance(closed.value, ContainerResponse):
            answered = closed.value.headers.get("x-amzn-sagemaker-closed-session-id")
        if not closed.ok:
            self.expect("session close", closed, 200)
        else:
            self.record(
                "session close",
                answered == session_id,
                f"X-Amzn-SageMaker-Closed-Session-Id: {answered}"
                if answered == session_id
                else f"expected X-Amzn-SageMaker-Closed-Session-Id: {session_id}, got {answered}",
            )
        after = self.invoke(name, None, session_id)
        self.record(
            "session closed id",
            400 <= after.status < 500,
            f"HTTP {after.status}"
            + ("" if 400 <= after.status < 500 else " (expected 4xx: session not found)"),
        )

    def _check_open(self, opened: _Outcome, header: str | None) -> str | None:
        if not opened.ok:
            self.expect("session open", opened, 200)
            return None
        if header is None:
            self.record("session open", False, "no X-Amzn-SageMaker-Session-Id header")
            return None
        try:
            session_id, expires = parse_session_header(header)
        except ValueError as exc:
            self.record("session open", False, f"malformed header {header[:80]!r}: {exc}")
            return None
        if expires is None:
            self.record("session open", False, f"{header[:80]!r} has no '; Expires=<UTC time>'")
            return None
        if expires <= time.time():
            self.record("session open", False, f"{header[:80]!r} has already expired")
            return None
        self.record("session open", True, f"{header[:80]}")
        return session_id

    def skip(self, names: Iterable[str], why: str) -> None:
        for name in names:
            self.record(name, None, why)

    def clear_leftovers(self) -> None:
        # Models left by an interrupted earlier run would make "load" answer 409.
        outcome = self.call(lambda: self._client.list_models(max_pages=_MAX_PAGES))
        if isinstance(outcome.value, list):
            for model in outcome.value:
                if model.name.startswith(self._prefix + "-"):
                    self.call(functools.partial(self._client.unload, model.name))

    def check_describe(self, name: str, url: str) -> None:
        outcome = self.call(lambda: self.describe(name))
        model = outcome.value
        if not isinstance(model, ContainerModel):
            self.expect("describe", outcome, 200)
        elif (model.name, model.url) != (name, url):
            self.record(
                "describe",
                False,
                f"answered modelName={model.name!r} modelUrl={model.url!r}, loaded as "
                f"{name!r} from {url!r}: model_name and url come from the JSON body",
            )
        else:
            self.record("describe", True, "HTTP 200, modelName and modelUrl as loaded")

    def check_invoke(self, name: str) -> None:
        outcome = self.invoke(name)
        why = "the model rejected the check's body: give one it accepts (invoke_body)"
        self.expect("invoke", outcome, 200, why if 400 <= outcome.status < 500 else "")

    def check_list(self, check: str, ours: list[str], limit: int | None) -> None:
        if not ours:
            self.record(check, None, "no model could be loaded")
            return
        seen: dict[str, int] = {}
        tokens: set[str] = set()
        token: str | None = None
        pages = 0
        names: list[str] = []
        for pages in range(1, _MAX_PAGES + 1):
            outcome = self.call(functools.partial(self._client.list_page, token, limit=limit))
            page = outcome.value
            if not isinstance(page, ContainerModelPage):
                self.expect(check, outcome, 200)
                return
            names = [m.name for m in page.models]
            token = page.next_page_token
            if names and all(n in seen for n in names) and token not in tokens:
                self.record(
                    check,
                    False,
                    f"page {pages} repeats earlier pages: "
                    "the container ignores next_page_token (a host would loop)",
                )
                return
            for n in names:
                seen[n] = seen.get(n, 0) + 1
            if token is None or not names:
                break
            if token in tokens:
                self.record(
                    check,
                    False,
                    f"nextPageToken {token!r} came back twice: a host following tokens would loop",
                )
                return
            tokens.add(token)
        else:
            self.record(check, False, f"still a nextPageToken after {_MAX_PAGES} pages")
            return
        missing = [n for n in ours if n not in seen]
        if missing:
            self.record(check, False, f"loaded models not listed: {', '.join(missing)}")
            return
        note = " (the last page is empty: token on an exactly-full page)" if not names else ""
        self.record(check, True, f"{len(seen)} model(s) in {pages} page(s){note}")

    def check_507(self, spare: list[str]) -> None:
        """Load until 507; ``spare`` are loaded models it may unload to make room."""
        names = _OOM_CHECKS
        if self._oom_attempts <= 0:
            self.skip(names, "disabled (oom_attempts=0)")
            return
        extra: list[str] = []
        refused: tuple[str, str] | None = None
        for _ in range(self._oom_attempts):
            name, url = self.new_name()
            outcome = self.load(name, url)
            if outcome.status == 507:
                refused = (name, url)
                break
            if not outcome.ok:
                self.record(names[0], False, f"a load answered {outcome.describe()}, not 507")
                self.skip(names[1:], "no 507")
                return
            extra.append(name)
        if refused is None:
            self.skip(names, f"no 507 after {self._oom_attempts} more loads (enough memory)")
            return
        self.record(names[0], True, f"HTTP 507 after {len(extra)} more load(s)")
        name, url = refused
        left = self.call(lambda: self.describe(name))
        if left.status == 404:
            self.record(names[1], True, "describe answers 404 for the refused model")
        else:
            invoked = self.invoke(name)
            self.record(
                names[1],
                False,
                f"after the 507, describe answers {left.describe()} and invoke "
                f"{invoked.describe()}: the refused model must not stay registered",
            )
            if self.call(lambda: self._client.unload(name)).ok:  # else cleanup tries again
                self._loaded.pop(name, None)
            else:
                self._loaded[name] = url
        victims = extra or spare
        victim = victims[-1] if victims else None
        if victim is None or not self.call(lambda: self._client.unload(victim)).ok:
            self.record(names[2], None, "could not unload a model to make room")
            return
        self._loaded.pop(victim, None)
        retry = self.load(name, url)
        self.expect(names[2], retry, 200, "DELETE must free the model's memory before answering")

    def check_unload(self, name: str) -> None:
        if not self.expect("unload", self.call(lambda: self._client.unload(name)), 200):
            self.skip(_UNLOAD_CHECKS[1:], "unload failed")
            return
        self._loaded.pop(name, None)
        after = self.call(lambda: self.describe(name))
        if not self.expect("unload then describe", after, 404, "unloaded models must be gone"):
            self._loaded[name] = ""  # still there: cleanup tries again
        self.expect("unload then invoke", self.invoke(name), 404)
        self.expect("unload again", self.call(lambda: self._client.unload(name)), 404)

    def cleanup(self) -> None:
        left = []
        for name in list(self._loaded):
            unload = self.call(functools.partial(self._client.unload, name))
            if (not unload.ok and unload.status != 404) or self.call(
                functools.partial(self.describe, name)
            ).ok:
                left.append(name)
        detail = (
            f"still loaded: {', '.join(left)}"
            if left
            else "every model the check loaded is unloaded"
        )
        self.record("cleanup", not left, detail)


def _load_hint(status: int, url: str) -> str:
    if status == 400:
        return "the container must read the JSON body sent with Content-Type: application/json"
    if status == 404:
        return f"the container found no model at {url}: see model_url"
    if status == 507:
        return "not enough memory for a single model"
    return ""


def check_container(
    url: str,
    *,
    timeout: float = 30.0,
    model_url: str | None = None,
    model_prefix: str = "smclient-check",
    invoke_body: bytes = b"{}",
    content_type: str = "application/json",
    oom_attempts: int = 16,
    sessions: bool = False,
    session_open_body: bytes = DEFAULT_OPEN_BODY,
    session_close_body: bytes = DEFAULT_CLOSE_BODY,
) -> list[CheckResult] | None:
    """Run every check against the container at ``url``; ``None`` when it does not
    answer ``GET /ping`` at all. See :func:`run_check` for the arguments.

    .. versionadded:: 0.1.0
    """
    with ContainerClient(url, timeout=timeout) as client:
        start = time.monotonic()
        try:
            healthy = client.ping()
        except ContainerUnreachableError:
            return None
        took = (time.monotonic() - start) * 1000
        checker = _Checker(
            client,
            model_url or DEFAULT_MODEL_URL,
            model_prefix,
            invoke_body,
            content_type,
            oom_attempts,
            sessions,
            session_open_body,
            session_close_body,
        )
        checker.record("ping", healthy, f"{'200' if healthy else 'not 200'} in {took:.0f} ms")
        try:
            checker.run()
        except _Lost as exc:
            checker.record("connection", False, f"the container stopped answering: {exc}")
        return checker.results


def run_check(
    url: str,
    *,
    out: TextIO,
    timeout: float = 30.0,
    model_url: str | None = None,
    model_prefix: str = "smclient-check",
    invoke_body: bytes = b"{}",
    content_type: str = "application/json",
    oom_attempts: int = 16,
    sessions: bool = False,
    session_open_body: bytes = DEFAULT_OPEN_BODY,
    session_close_body: bytes = DEFAULT_CLOSE_BODY,
) -> int:
    """Check the container at ``url`` against the multi-model contract and print a table
    to ``out``. Returns 0 when no check failed (skipped checks do not fail), 1 when one
    did, 2 when the container does not answer at all.

    ``timeout``: seconds per request (default 30). ``model_url``: where the container
    finds a model to load (default ``/opt/ml/models/{name}/model``; ``{name}`` is
    replaced by the model name, a path without it loads the same model under every
    name). ``model_prefix``: names of the models the check loads (``<prefix>-1``...).
    ``invoke_body``/``content_type``: the request each invocation sends.
    ``oom_attempts``: how many more models to load at most to provoke a 507 (0: skip).
    ``sessions``: also check the stateful-session contract on a loaded model (protocol.md
    §4): ``session_open_body`` sent with ``X-Amzn-SageMaker-Session-Id: NEW_SESSION`` must
    answer ``<id>; Expires=<UTC time>`` in that header, a call with the id must succeed,
    ``session_close_body`` with the id must answer ``X-Amzn-SageMaker-Closed-Session-Id:
    <id>``, and the closed id must then be refused (4xx). Checks not run are listed as
    SKIP with the reason.

    .. versionadded:: 0.1.0
    .. versionadded:: 0.2.0 ``sessions``, ``session_open_body``, ``session_close_body``.
    """
    results = check_container(
        url,
        timeout=timeout,
        model_url=model_url,
        model_prefix=model_prefix,
        invoke_body=invoke_body,
        content_type=content_type,
        oom_attempts=oom_attempts,
        sessions=sessions,
        session_open_body=session_open_body,
        session_close_body=session_close_body,
    )
    if results is None:
        out.write(f"The container at {url} does not answer (GET /ping): is it running?\n")
        return 2
    out.write(format_table(results))
    return 1 if any(r.result == "FAIL" for r in results) else 0


def format_table(results: list[CheckResult]) -> str:
    """The results as a fixed-width text table with a summary line."""
    width = max([len("CHECK"), *(len(r.name) for r in results)])
    lines = [f"{'CHECK':<{width}}  RESULT  DETAIL"]
    lines += [f"{r.name:<{width}}  {r.result:<6}  {r.detail}" for r in results]
    counts = {v: sum(r.result == v for r in results) for v in ("PASS", "FAIL", "SKIP")}
    lines.append(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``check-container``'s arguments (``url`` and the options of :func:`run_check`)."""
    parser.add_argument("url", help="the container's base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument(
        "--model-url",
        default=None,
        help="path inside the container to load models from; {name} is replaced by the "
        f"model name (default {DEFAULT_MODEL_URL})",
    )
    parser.add_argument("--model-prefix", default="smclient-check", help="check model names")
    parser.add_argument("--invoke-body", default="{}", help="request body of invocations")
    parser.add_argument("--content-type", default="application/json", help="its content type")
    parser.add_argument(
        "--oom-attempts", type=int, default=16, help="loads at most to provoke a 507 (0: skip)"
    )
    parser.add_argument(
        "--sessions",
        action="store_true",
        help="also check the stateful-session contract (open, use, close, closed id)",
    )
    parser.add_argument(
        "--session-open-body",
        default=DEFAULT_OPEN_BODY.decode(),
        help="body of the NEW_SESSION request (default %(default)s)",
    )
    parser.add_argument(
        "--session-close-body",
        default=DEFAULT_CLOSE_BODY.decode(),
        help="body of the closing request (default %(default)s)",
    )


def run_from_args(args: argparse.Namespace, *, out: TextIO) -> int:
    """:func:`run_check` with the arguments :func:`add_arguments` defined."""
    return run_check(
        args.url,
        out=out,
        timeout=args.timeout,
        model_url=args.model_url,
        model_prefix=args.model_prefix,
        invoke_body=args.invoke_body.encode(),
        content_type=args.content_type,
        oom_attempts=args.oom_attempts,
        sessions=args.sessions,
        session_open_body=args.session_open_body.encode(),
        session_close_body=args.session_close_body.encode(),
    )
