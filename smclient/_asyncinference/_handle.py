"""The :class:`AsyncInvocation` handle and the :class:`Completion` a poller finds for it."""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, overload

import attrs

from .._codecs import CSV, JSON, NPY, RAW, Codec
from .._errors import InvalidInputError, ServiceError
from . import _s3 as s3
from ._checks import split_s3_url
from ._errors import AsyncInferenceError

if TYPE_CHECKING:
    from .._endpoint import Endpoint
    from ._poller import Poller

__all__ = ["AsyncInvocation", "Completion", "S3Object"]

CODECS: dict[str, Codec] = {"json": JSON, "csv": CSV, "raw": RAW, "npy": NPY}
_FORMAT = "smclient.AsyncInvocation/1"


def codec_name(codec: Codec | None) -> str | None:
    """The name under which a built-in codec is saved in a handle (``None`` otherwise)."""
    for name, known in CODECS.items():
        if codec is known or codec == known:
            return name
    return None


@attrs.frozen(kw_only=True)
class AsyncInvocation:
    """A submitted asynchronous invocation: a frozen, JSON-serialisable handle.

    ``endpoint_name``, ``region``, ``inference_id``, ``input_location``,
    ``output_location`` and ``failure_location`` (``s3://`` URLs as the service
    returned them; ``failure_location`` is ``None`` when it returned none),
    ``submitted_at`` and ``deadline`` (POSIX seconds; the deadline is
    ``submitted_at + RequestTTLSeconds + InvocationTimeoutSeconds``, service defaults
    21600 and 900 s, plus a minute of slack), ``content_type``, ``accept``,
    ``codec`` (name of a built-in codec used to decode the result, or ``None``).

    :meth:`to_json` / :meth:`from_json` carry it to another process or kernel. The
    ``endpoint`` whose clients read S3 is not serialised; :meth:`from_json` takes one
    or builds ``Endpoint(endpoint_name, region=region, aws_endpoint_url=...)``.

    Like a :class:`concurrent.futures.Future`: :meth:`done`, :meth:`result`,
    :meth:`exception`. Once any poller in the process found the result, every handle of
    the same inference (equal handles, copies, ones loaded with :meth:`from_json`) knows it
    and answers without a polling request.

    .. versionadded:: 0.1.0
    """

    endpoint_name: str
    inference_id: str
    output_location: str
    failure_location: str | None
    input_location: str
    submitted_at: float
    deadline: float
    region: str | None = None
    aws_endpoint_url: str | None = None
    content_type: str | None = None
    accept: str | None = None
    codec: str | None = None
    request_ttl: int | None = None
    invocation_timeout: int | None = None
    endpoint: Endpoint | None = attrs.field(default=None, eq=False, repr=False)
    # What this handle learned (see _registry.py): not part of equality, repr or JSON.
    _outcome: Completion | None = attrs.field(default=None, init=False, eq=False, repr=False)

    @property
    def key(self) -> str:
        """What identifies this invocation in a poller: its output location."""
        return self.output_location

    def _repr_html_(self) -> str:  # notebooks: a short, escaped summary
        from .._html import async_invocation

        return async_invocation(self)

    def to_json(self) -> str:
        """The handle as a JSON string (without the endpoint object)."""
        data = attrs.asdict(
            self, recurse=False, filter=lambda a, _v: a.init and a.name != "endpoint"
        )
        return json.dumps({"format": _FORMAT, **data}, sort_keys=True)

    @classmethod
    def from_json(
        cls, data: str | bytes | Mapping[str, Any], *, endpoint: Endpoint | None = None
    ) -> AsyncInvocation:
        """A handle from :meth:`to_json`'s output (a string or the parsed mapping).

        ``endpoint`` reads S3 for it; by default one is built from the saved endpoint
        name, region and ``aws_endpoint_url`` with boto3's default credentials.
        """
        try:
            raw = json.loads(data) if isinstance(data, str | bytes) else dict(data)
            if raw.pop("format", None) != _FORMAT:
                raise ValueError("not an AsyncInvocation document")
            fields = {a.name for a in attrs.fields(cls) if a.init} - {"endpoint"}
            handle = cls(**{k: v for k, v in raw.items() if k in fields})
        except (TypeError, ValueError, AttributeError) as exc:  # AttributeError: not an object
            raise InvalidInputError("data", f"cannot load an AsyncInvocation: {exc}") from None
        return attrs.evolve(handle, endpoint=endpoint or handle.bound_endpoint())

    def bound_endpoint(self) -> Endpoint:
        """The endpoint whose clients serve this handle: its own, else one shared per name,
        region and URL by the handles and pollers using it (held weakly: it is closed with
        its connection pools once none of them needs it any more)."""
        if self.endpoint is None:
            return _default_endpoint(self.endpoint_name, self.region, self.aws_endpoint_url)
        return self.endpoint

    def _learn(self, completion: Completion) -> None:
        object.__setattr__(self, "_outcome", completion)

    def _known(self) -> Completion | None:
        """What the process knows about this invocation, without any request."""
        from ._registry import REGISTRY

        found = REGISTRY.get(self)
        if found is None:
            return self._outcome
        if found is not self._outcome:
            self._learn(found)
        return found

    def _poller(self, poller: Poller | None) -> Poller:
        if poller is not None:
            return poller
        from ._poller import Poller

        return Poller(self.bound_endpoint())

    def done(self, *, poller: Poller | None = None) -> bool:
        """Whether the invocation has finished. No request when the process already knows
        (a ``wait``, ``as_completed`` or another handle found it); else one look at S3 (and
        the poller's queue), no waiting."""
        if self._known() is not None:
            return True
        return self._poller(poller).check(self) is not None

    def wait(self, timeout: float | None = None, *, poller: Poller | None = None) -> Completion:
        """Wait until it finishes (at once, without a request, when already known);
        :class:`AsyncTimeoutError` after ``timeout`` seconds (default: until :attr:`deadline`)."""
        known = self._known()
        if known is not None:
            return known
        return self._poller(poller).wait_one(self, timeout=timeout)

    @overload
    def result(
        self,
        timeout: float | None = ...,
        *,
        codec: Codec | None = ...,
        download: Literal[True] = ...,
        poller: Poller | None = ...,
    ) -> Any: ...
    @overload
    def result(
        self,
        timeout: float | None = ...,
        *,
        codec: Codec | None = ...,
        download: Literal[False],
        poller: Poller | None = ...,
    ) -> S3Object: ...
    @overload
    def result(
        self,
        timeout: float | None = ...,
        *,
        codec: Codec | None = ...,
        download: bool,
        poller: Poller | None = ...,
    ) -> Any: ...

    def result(
        self,
        timeout: float | None = None,
        *,
        codec: Codec | None = None,
        download: bool = True,
        poller: Poller | None = None,
    ) -> Any:
        """Wait, then return the decoded output (see :meth:`Completion.result`: one
        ``GetObject`` unless ``download=False``; no polling request when already known).

        Raises :class:`AsyncInferenceError` when it failed, :class:`AsyncTimeoutError`
        when ``timeout`` seconds (default: until :attr:`deadline`) pass first.
        """
        return self.wait(timeout, poller=poller).result(codec=codec, download=download)

    def exception(
        self, timeout: float | None = None, *, poller: Poller | None = None
    ) -> AsyncInferenceError | None:
        """Wait, then return the failure as an :class:`AsyncInferenceError`, or ``None``
        (no request on success once known; a failure reads its failure object once)."""
        return self.wait(timeout, poller=poller).exception()


@attrs.frozen
class S3Object:
    """A result left in S3: ``bucket``, ``key``, ``size`` (bytes, when known) and ``url``.

    .. versionadded:: 0.1.0
    """

    bucket: str
    key: str
    size: int | None = None

    @property
    def url(self) -> str:
        """The object as an ``s3://bucket/key`` URL."""
        return f"s3://{self.bucket}/{self.key}"


@attrs.frozen(kw_only=True)
class Completion:
    """A finished invocation as a poller found it.

    ``invocation``; ``succeeded``; ``source`` (``"s3"`` or ``"notification"``: what
    revealed it first); ``failure_reason`` (from the error notification, when one had
    arrived; :meth:`exception` also sees a notification that arrived later); ``size``
    (output bytes, when listed). Shared by every handle of the invocation in the process.

    .. versionadded:: 0.1.0
    """

    invocation: AsyncInvocation
    succeeded: bool
    source: Literal["s3", "notification"]
    failure_reason: str | None = None
    size: int | None = None
    # The failure object's bytes once read (exception() reads it once per completion).
    _cache: dict[str, bytes | None] = attrs.field(factory=dict, init=False, eq=False, repr=False)

    @overload
    def result(self, *, codec: Codec | None = ..., download: Literal[True] = ...) -> Any: ...
    @overload
    def result(self, *, codec: Codec | None = ..., download: Literal[False]) -> S3Object: ...
    @overload
    def result(self, *, codec: Codec | None = ..., download: bool) -> Any: ...

    def result(self, *, codec: Codec | None = None, download: bool = True) -> Any:
        """The output: fetched and decoded with ``codec`` (default: the invocation's
        codec; else JSON when the object's content type is JSON, or when it has none, or a
        generic binary one, and the invocation's ``accept`` is JSON; else ``bytes``).
        ``download=False`` returns an :class:`S3Object` reference instead (large outputs).
        Raises :class:`AsyncInferenceError` when the invocation failed."""
        error = None if self.succeeded else self.exception()
        if error is not None:
            raise error
        bucket, key = split_s3_url(self.invocation.output_location)
        if not download:
            return S3Object(bucket, key, self.size)
        data, content_type = _get(self.invocation, bucket, key)
        chosen = codec or CODECS.get(self.invocation.codec or "")
        if chosen is None and _is_json(_typed(content_type) or self.invocation.accept):
            chosen = JSON
        return data if chosen is None else chosen.decode(data)

    def _repr_html_(self) -> str:  # notebooks: a short, escaped summary
        from .._html import completion

        return completion(self)

    def exception(self) -> AsyncInferenceError | None:
        """The failure with the failure object's content (``None`` on success)."""
        if self.succeeded:
            return None
        inv = self.invocation
        content = self._failure_content()
        code = _error_code(content)
        reason = self.failure_reason or self._notified_reason() or _reason(content)
        text = f"asynchronous invocation {inv.inference_id!r} on endpoint {inv.endpoint_name!r}"
        text += f" failed: {reason or code or 'see the failure object'}"
        if inv.failure_location:
            text += f" (failure object {inv.failure_location})"
        return AsyncInferenceError(
            text,
            inference_id=inv.inference_id,
            endpoint=inv.endpoint_name,
            failure_location=inv.failure_location,
            failure_reason=reason,
            failure_content=content,
            error_code=code,
        )

    def _failure_content(self) -> bytes | None:
        if "failure" in self._cache:
            return self._cache["failure"]
        inv = self.invocation
        content: bytes | None = None
        if inv.failure_location:
            bucket, key = split_s3_url(inv.failure_location)
            try:
                content, _ = _get(inv, bucket, key)
            except ServiceError as exc:
                if not s3.missing(exc):
                    raise
        self._cache["failure"] = content
        return content

    def _notified_reason(self) -> str | None:
        # A failure found in S3 before its notification: the notification that came later
        # lent its failureReason to the process's record (see _registry.merge).
        from ._registry import REGISTRY

        known = REGISTRY.get(self.invocation)
        return known.failure_reason if known is not None else None


def _typed(content_type: str | None) -> str | None:
    """The content type, unless it says nothing (absent or generic binary)."""
    if content_type in (None, "", "application/octet-stream", "binary/octet-stream"):
        return None
    return content_type


_ENDPOINTS: weakref.WeakValueDictionary[tuple[str, str | None, str | None], Endpoint] = (
    weakref.WeakValueDictionary()
)
_ENDPOINTS_LOCK = threading.Lock()


def _default_endpoint(name: str, region: str | None, aws_endpoint_url: str | None) -> Endpoint:
    # Shared, so that handles without an endpoint do not build new clients (and connection
    # pools) for every request; held weakly, so that it is released with the last handle
    # or poller using it instead of living as long as the process.
    from .._endpoint import Endpoint

    key = (name, region, aws_endpoint_url)
    with _ENDPOINTS_LOCK:
        found = _ENDPOINTS.get(key)
        if found is None:
            found = Endpoint(name, region=region, aws_endpoint_url=aws_endpoint_url)
            _ENDPOINTS[key] = found
        return found


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json")


def _get(inv: AsyncInvocation, bucket: str, key: str) -> tuple[bytes, str | None]:
    return s3.get(inv.bound_endpoint().client("s3"), bucket, key, endpoint=inv.endpoint_name)


def _document(content: bytes | None) -> dict[str, Any]:
    if not content:
        return {}
    try:
        doc = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _error_code(content: bytes | None) -> str | None:
    code = _document(content).get("errorCode")
    return code if isinstance(code, str) else None


def _reason(content: bytes | None) -> str | None:
    reason = _document(content).get("failureReason")
    return reason if isinstance(reason, str) else None
