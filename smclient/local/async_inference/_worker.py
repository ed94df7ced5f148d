"""The local endpoint's async-inference engine (``POST /endpoints/{name}/async-invocations``).

:class:`AsyncWorker` does what SageMaker does behind ``InvokeEndpointAsync``: it accepts
a request at once (the route answers 202), queues it in a backlog, runs at most
``MaxConcurrentInvocationsPerInstance`` invocations at a time on worker threads, reads the
input from S3, calls the model, writes the output (or the failure) to S3 and publishes
the success (or error) notification to SNS. See ``docs/local-async.md``.

Lifecycle: ``start()`` (publishes the ``TestNotification``) -> ``submit(...)`` any number
of times -> ``close(timeout)``. Threads: one per concurrent invocation slot (created on
demand, at most ``max_concurrent_invocations``) plus one short-lived thread per running
invocation, so that an invocation that overruns ``InvocationTimeoutSeconds`` can be
failed while the model call is still running (its late result is discarded).
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from . import _notify as notify
from ._aws import AWSConnection, EmbeddedAWS
from ._types import (
    AsyncAccepted,
    AsyncRequest,
    AsyncRequestError,
    AsyncSettings,
    AsyncStats,
    ModelReply,
    locations,
    split_s3_url,
)

__all__ = [
    "AWSConnection",
    "AsyncAccepted",
    "AsyncRequest",
    "AsyncRequestError",
    "AsyncSettings",
    "AsyncStats",
    "AsyncWorker",
    "EmbeddedAWS",
    "ModelReply",
]

_log = logging.getLogger("smclient.local.async")

Invoke = Callable[[bytes, AsyncRequest], ModelReply]


@attrs.define(eq=False)
class _Job:
    request: AsyncRequest
    accepted: AsyncAccepted
    received: float  # by the worker's clock


@attrs.define(eq=False)
class _Call:
    """One model invocation on its own thread; the worker waits on ``done``."""

    done: threading.Event = attrs.field(factory=threading.Event)
    reply: object = None
    error: BaseException | None = None


class _Failed(Exception):
    def __init__(self, failure: notify.Failure) -> None:
        super().__init__(failure.code)
        self.failure = failure


@attrs.define(eq=False, repr=False)
class AsyncWorker:
    """The async engine of one local endpoint.

    ``invoke(body, request)`` runs the model and returns a :class:`ModelReply`; it is
    called on a worker thread, at most ``settings.max_concurrent_invocations`` at once
    (an invocation abandoned after its timeout keeps running until it returns, outside
    that count). ``aws`` reaches S3/SNS. ``clock`` (POSIX seconds, default
    ``time.time``) decides TTL expiry and invocation timeouts and stamps the
    notifications; tests inject a fake one. A busy worker re-reads the clock every
    ``poll_interval`` seconds (default 0.05).

    Thread-safe. States: new -> running (:meth:`start`) -> closed (:meth:`close`).

    .. versionadded:: 0.1.0
    """

    _endpoint_name: str
    _settings: AsyncSettings
    _invoke: Invoke
    _aws: EmbeddedAWS | AWSConnection = attrs.field(kw_only=True)
    _clock: Callable[[], float] = attrs.field(default=time.time, kw_only=True)
    _poll_interval: float = attrs.field(default=0.05, kw_only=True)
    _cond: threading.Condition = attrs.field(factory=threading.Condition, init=False)
    _state: str = attrs.field(default="new", init=False)
    _queue: collections.deque[_Job] = attrs.field(factory=collections.deque, init=False)
    _workers: list[threading.Thread] = attrs.field(factory=list, init=False)
    _calls: set[threading.Thread] = attrs.field(factory=set, init=False)
    _idle: int = attrs.field(default=0, init=False)
    _in_flight: int = attrs.field(default=0, init=False)
    _completed: int = attrs.field(default=0, init=False)
    _failed: int = attrs.field(default=0, init=False)
    _last_sweep: float = attrs.field(default=0.0, init=False)
    _abort: threading.Event = attrs.field(factory=threading.Event, init=False)
    _s3: Any = attrs.field(default=None, init=False)
    _sns: Any = attrs.field(default=None, init=False)

    def __repr__(self) -> str:
        return (
            f"AsyncWorker(endpoint_name={self._endpoint_name!r}, state={self._state!r}, "
            f"backlog={len(self._queue)})"
        )

    @property
    def settings(self) -> AsyncSettings:
        """The endpoint's async configuration."""
        return self._settings

    def stats(self) -> AsyncStats:
        """A snapshot of the counters."""
        with self._cond:
            return AsyncStats(len(self._queue), self._in_flight, self._completed, self._failed)

    def start(self) -> None:
        """Create the S3/SNS clients and publish the ``TestNotification`` to each
        configured topic, as SageMaker does when an endpoint is created.

        Raises ``RuntimeError`` (from the botocore error) when a topic cannot be
        published to; the worker then stays unstarted.
        """
        with self._cond:
            if self._state != "new":
                raise RuntimeError(
                    f"the async worker of {self._endpoint_name!r} starts once (it is {self._state})"
                )
            self._s3 = self._aws.client("s3")
            self._sns = self._aws.client("sns") if self._settings.topics else None
        from botocore.exceptions import BotoCoreError, ClientError

        for topic in self._settings.topics:
            try:
                self._sns.publish(TopicArn=topic, Message=json.dumps(notify.TEST_NOTIFICATION))
            except (BotoCoreError, ClientError) as exc:
                self._close_clients()
                raise RuntimeError(
                    f"endpoint {self._endpoint_name!r}: cannot publish to SNS topic {topic}: "
                    f"{notify.error_code(exc)}"
                ) from exc
        with self._cond:
            self._state = "running"

    def submit(self, request: AsyncRequest) -> AsyncAccepted:
        """Validate and queue ``request``; returns at once with its locations.

        Raises :class:`AsyncRequestError` for a request out of the service's limits
        (answer 400 ``ValidationError``) and ``RuntimeError`` when the worker is not
        running (answer 503 ``ServiceUnavailable``).
        """
        if not isinstance(request, AsyncRequest):
            raise TypeError(f"expected an AsyncRequest, got {type(request).__name__}")
        request.validate()
        inference_id = request.inference_id or str(uuid.uuid4())
        output, failure = locations(self._settings, request, str(uuid.uuid4()))
        accepted = AsyncAccepted(inference_id, output, failure)
        with self._cond:
            if self._state != "running":
                raise RuntimeError(
                    f"endpoint {self._endpoint_name!r} is not accepting async requests "
                    f"(state: {self._state})"
                )
            self._queue.append(_Job(request, accepted, self._clock()))
            if (
                self._idle < len(self._queue)
                and len(self._workers) < self._settings.max_concurrent_invocations
            ):
                worker = threading.Thread(
                    target=self._work,
                    name=f"smclient-async-{self._endpoint_name}-{len(self._workers)}",
                    daemon=True,
                )
                self._workers.append(worker)
                worker.start()
            self._cond.notify()
        return accepted

    def close(self, timeout: float = 10.0) -> None:
        """Stop accepting requests and shut the workers down within ``timeout`` seconds.

        Requests still in the backlog are not run: each fails at once with
        ``EndpointShutDown`` (failure object written, error notification published).
        Running invocations get until ``timeout`` minus a reserve (a fifth of it, at most
        2 s) to finish normally; those still running then fail with ``EndpointShutDown``.
        Every thread is joined with the deadline; a model call that ignores it is left
        behind as a daemon thread (logged). Idempotent.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            was = self._state
            self._state = "closed"
            cancelled = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        if was == "new":
            return
        for job in cancelled:
            self._finish_failed(job, notify.shut_down(started=False))
        reserve = min(timeout / 5, 2.0)
        for worker in self._workers:
            worker.join(max(0.0, deadline - reserve - time.monotonic()))
        if any(w.is_alive() for w in self._workers):
            self._abort.set()
            for worker in self._workers:
                worker.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            calls = list(self._calls)
        for call in calls:
            call.join(max(0.0, deadline - time.monotonic()))
        left = [t.name for t in (*self._workers, *calls) if t.is_alive()]
        if left:
            _log.warning(
                "endpoint %s: threads still running after close: %s", self._endpoint_name, left
            )
        if not any(w.is_alive() for w in self._workers):
            # Model calls left behind never touch S3/SNS: only workers use the clients.
            self._close_clients()

    # -- worker side ----------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                self._idle += 1
                try:
                    while not self._queue and self._state == "running":
                        # A deadline on every wait; the loop re-checks the state.
                        self._cond.wait(1.0)
                finally:
                    self._idle -= 1
                if not self._queue:
                    return
                job = self._queue.popleft()
                self._in_flight += 1
            try:
                self._handle(job)
            except Exception:  # a bug here must not cost a worker slot or lose the request
                _log.exception("endpoint %s: async worker error", self._endpoint_name)
                self._finish_failed(job, notify.internal("The async worker failed."))
            finally:
                with self._cond:
                    self._in_flight -= 1

    def _handle(self, job: _Job) -> None:
        request = job.request
        if self._clock() - job.received > request.request_ttl_seconds:
            self._finish_failed(job, notify.expired(request.request_ttl_seconds))
            return
        try:
            body = self._read_input(request.input_location)
            reply = self._call_model(job, body)
        except _Failed as failed:
            self._finish_failed(job, failed.failure)
            return
        if 200 <= reply.status < 300:
            self._finish_ok(job, reply)
        else:
            self._finish_failed(job, notify.model_error(reply))

    def _read_input(self, location: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            bucket, key = split_s3_url(location)
        except ValueError as exc:
            raise _Failed(notify.input_failure(location, "InvalidLocation")) from exc
        try:
            found = self._s3.get_object(Bucket=bucket, Key=key)
            with found["Body"] as stream:
                data: bytes = stream.read()
            return data
        except (BotoCoreError, ClientError) as exc:
            raise _Failed(notify.input_failure(location, notify.error_code(exc))) from exc

    def _call_model(self, job: _Job, body: bytes) -> ModelReply:
        call = _Call()
        thread = threading.Thread(
            target=self._run_call,
            args=(call, body, job.request),
            name=f"smclient-async-{self._endpoint_name}-invoke",
            daemon=True,
        )
        # The invocation's time starts before the model does: taken after start(), a slow
        # scheduler could let the model run (and the clock move) before the deadline is set.
        timeout = job.request.invocation_timeout_seconds
        deadline = self._clock() + timeout
        with self._cond:
            self._calls.add(thread)
        thread.start()
        while not call.done.wait(max(0.0, min(self._poll_interval, deadline - self._clock()))):
            if self._clock() >= deadline:
                raise _Failed(notify.timed_out(timeout))
            if self._abort.is_set():
                raise _Failed(notify.shut_down(started=True))
            self._sweep_backlog()
        if call.error is not None:
            raise _Failed(notify.internal(f"The model raised {type(call.error).__name__}."))
        if not isinstance(call.reply, ModelReply):
            raise _Failed(notify.internal("The model host returned no ModelReply."))
        return call.reply

    def _run_call(self, call: _Call, body: bytes, request: AsyncRequest) -> None:
        try:
            call.reply = self._invoke(body, request)
        except BaseException as exc:  # reported as the request's failure, then logged
            call.error = exc
            _log.error("endpoint %s: the model raised", self._endpoint_name, exc_info=True)
        finally:
            call.done.set()
            with self._cond:
                self._calls.discard(threading.current_thread())

    def _sweep_backlog(self) -> None:
        """Fail queued requests past their TTL while every worker is busy."""
        now = self._clock()
        with self._cond:
            real_now = time.monotonic()
            if real_now - self._last_sweep < self._poll_interval:
                return  # another busy worker swept just now
            self._last_sweep = real_now
            expired = [j for j in self._queue if now - j.received > j.request.request_ttl_seconds]
            for job in expired:
                self._queue.remove(job)
        for job in expired:
            self._finish_failed(job, notify.expired(job.request.request_ttl_seconds))

    def _finish_ok(self, job: _Job, reply: ModelReply) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        location = job.accepted.output_location
        bucket, key = split_s3_url(location)
        extra = {"ContentType": reply.content_type} if reply.content_type else {}
        try:
            self._s3.put_object(Bucket=bucket, Key=key, Body=reply.body, **extra)
        except (BotoCoreError, ClientError) as exc:
            self._finish_failed(job, notify.output_failure(location, notify.error_code(exc)))
            return
        with self._cond:
            self._completed += 1
        include = "SUCCESS_NOTIFICATION_TOPIC" in self._settings.include_inference_response_in
        self._publish(
            self._settings.success_topic,
            lambda: notify.success_message(reply=reply, include=include, **self._envelope(job)),
        )

    def _finish_failed(self, job: _Job, failure: notify.Failure) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        location = job.accepted.failure_location
        bucket, key = split_s3_url(location)
        doc = notify.failure_document(job.accepted.inference_id, failure)
        try:
            self._s3.put_object(Bucket=bucket, Key=key, Body=doc, ContentType="application/json")
        except (BotoCoreError, ClientError) as exc:
            _log.warning(
                "endpoint %s: cannot write the failure object %s: %s",
                self._endpoint_name,
                location,
                notify.error_code(exc),
            )
        with self._cond:
            self._failed += 1
        include = "ERROR_NOTIFICATION_TOPIC" in self._settings.include_inference_response_in
        self._publish(
            self._settings.error_topic,
            lambda: notify.failure_message(failure=failure, include=include, **self._envelope(job)),
        )

    def _envelope(self, job: _Job) -> dict[str, Any]:
        return {
            "endpoint_name": self._endpoint_name,
            "region": self._aws.region,
            "request": job.request,
            "accepted": job.accepted,
            "received": job.received,
            "now": self._clock(),
        }

    def _publish(self, topic: str | None, message: Callable[[], str]) -> None:
        if topic is None:
            return
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._sns.publish(TopicArn=topic, Message=message())
        except (BotoCoreError, ClientError) as exc:
            _log.warning(
                "endpoint %s: cannot publish to %s: %s",
                self._endpoint_name,
                topic,
                notify.error_code(exc),
            )

    def _close_clients(self) -> None:
        for client in (self._s3, self._sns):
            if client is not None:
                client.close()
