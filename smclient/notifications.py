"""Receive SageMaker async-inference notifications in a program: an SQS queue subscribed to
the endpoint's SNS success and error topics (protocol.md §5).

.. code-block:: python

    from smclient import notifications

    with notifications.subscribe(success_topic, error_topic, endpoint=endpoint) as sub:
        poller = sub.poller()
        for completion in poller.as_completed(invocations):
            ...

Envelope delivery is the default, so that each message's ``TopicArn`` is checked against
the topics; ``raw_delivery=True`` strips it and leaves only the queue policy as the guard.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from typing_extensions import Self

from ._errors import InvalidInputError, ServiceError, SMClientError
from ._retry import RetryPolicy, run

if TYPE_CHECKING:
    from ._asyncinference._poller import Poller
    from ._endpoint import Endpoint

__all__ = ["Subscription", "subscribe"]

_TOPIC = re.compile(r"arn:aws[a-z\-]*:sns:[a-z0-9\-]+:[0-9]{12}:[a-zA-Z0-9_-]{1,256}")
_QUEUE_NAME = re.compile(r"[a-zA-Z0-9_-]{1,80}")
_REQUEST_BUDGET = 60.0  # seconds one SNS/SQS request may take with its retries, at most
# What SNS / SQS answer for a subscription or queue that no longer exists (a step of an
# earlier close() that worked although its answer was lost).
_GONE = frozenset({"NotFound", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


@attrs.define
class Subscription:
    """An SQS queue subscribed to SNS topics, made by :func:`subscribe`.

    ``queue_url``, ``queue_arn``, ``topics`` (the subscribed topic ARNs),
    ``raw_delivery``, ``subscription_arns``. :meth:`close` (or leaving the ``with``
    block) removes the subscriptions and the queue. States: open -> closed.

    .. versionadded:: 0.1.0
    """

    endpoint: Endpoint = attrs.field(repr=False)
    queue_url: str
    queue_arn: str
    topics: tuple[str, ...]
    raw_delivery: bool = False
    subscription_arns: list[str] = attrs.field(factory=list)
    _closed: bool = attrs.field(default=False, init=False)
    # Steps of close() that succeeded ("Unsubscribe ARN", "DeleteQueue"): a retried close
    # does only the rest.
    _removed: set[str] = attrs.field(factory=set, init=False, repr=False)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has finished: subscriptions removed and queue deleted."""
        return self._closed

    def poller(self, **options: Any) -> Poller:
        """A :class:`smclient.Poller` reading this queue (and S3, unless ``s3=False``)."""
        from ._asyncinference._poller import Poller

        return Poller(self.endpoint, subscription=self, **options)

    def close(self) -> None:
        """Unsubscribe and delete the queue (idempotent). Every step is tried; the first
        error is raised after the others ran. The subscription is closed only when every
        step succeeded: calling ``close`` again retries the steps that failed (a
        subscription or queue already gone counts as removed)."""
        if self._closed:
            return
        first: SMClientError | None = None
        sns = self.endpoint.client("sns")
        sqs = self.endpoint.client("sqs")
        steps: list[tuple[str, str, Callable[[], Any]]] = [
            (f"Unsubscribe {arn}", "Unsubscribe",
             functools.partial(sns.unsubscribe, SubscriptionArn=arn))
            for arn in self.subscription_arns
        ]  # fmt: skip
        delete = functools.partial(sqs.delete_queue, QueueUrl=self.queue_url)
        steps.append(("DeleteQueue", "DeleteQueue", delete))
        for step, operation, fn in steps:
            if step in self._removed:
                continue
            try:
                _call(self.endpoint, operation, fn)
            except ServiceError as exc:
                if exc.error_code not in _GONE:
                    first = first or exc
                    continue
            except SMClientError as exc:
                first = first or exc
                continue
            self._removed.add(step)
        if first is not None:
            raise first
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _call(endpoint: Endpoint, operation: str, fn: Any) -> Any:
    # The endpoint's sleep and clock (injected in tests), with a budget of our own: its
    # policy is tuned for invocations (ModelNotReady for minutes), not for SNS/SQS.
    base = endpoint.retry
    policy = RetryPolicy(timeout=_REQUEST_BUDGET, sleep=base.sleep, clock=base.clock)
    result, _ = run(policy, fn, endpoint=endpoint.name, operation=operation)
    return result


def check_topic(field: str, value: object) -> str:
    """``value`` if it is an SNS topic ARN, else :class:`InvalidInputError` naming ``field``.
    The one topic check (``create_async_endpoint`` uses it too)."""
    if not isinstance(value, str) or not _TOPIC.fullmatch(value):
        raise InvalidInputError(
            field,
            f"{str(value)[:100]!r} is not an SNS topic ARN",
            limit="arn:aws:sns:REGION:ACCOUNT:NAME",
        )
    return value


def queue_policy(queue_arn: str, topics: tuple[str, ...]) -> str:
    """The SQS queue policy that lets only ``topics`` send to the queue."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "smclient-sns",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": list(topics)}},
                }
            ],
        }
    )


def subscribe(
    success_topic: str,
    error_topic: str | None = None,
    *,
    endpoint: Endpoint,
    queue_name: str | None = None,
    raw_delivery: bool = False,
) -> Subscription:
    """Create an SQS queue that only ``success_topic`` and ``error_topic`` (SNS topic ARNs)
    may send to, and subscribe it to them. Returns a :class:`Subscription`; use it as a
    context manager to remove the queue and subscriptions afterwards.

    ``endpoint`` supplies the SNS/SQS clients, and the ``sleep``/``clock`` of its retry
    policy for the retries of each request (at most 60 s each). ``queue_name`` (default
    ``smclient-async-<random>``; 1..80 letters, digits, ``-``, ``_``). ``raw_delivery``
    (default ``False``): deliver the notification JSON without the SNS envelope (then
    the ``TopicArn`` check is lost). If a step fails, what was created is removed.

    .. versionadded:: 0.1.0
    """
    topics = [check_topic("success_topic", success_topic)]
    if error_topic is not None:
        topics.append(check_topic("error_topic", error_topic))
    distinct = tuple(dict.fromkeys(topics))
    name = queue_name or f"smclient-async-{uuid.uuid4().hex[:16]}"
    if not _QUEUE_NAME.fullmatch(name):
        raise InvalidInputError(
            "queue_name", f"{name[:100]!r} is not a valid queue name", limit="1-80 of [a-zA-Z0-9_-]"
        )
    sqs = endpoint.client("sqs")
    sns = endpoint.client("sns")
    url = _call(endpoint, "CreateQueue", lambda: sqs.create_queue(QueueName=name))["QueueUrl"]
    subscription = Subscription(endpoint, url, "", distinct, raw_delivery)
    try:
        attributes = _call(
            endpoint,
            "GetQueueAttributes",
            lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]),
        )
        subscription.queue_arn = arn = attributes["Attributes"]["QueueArn"]
        policy = queue_policy(arn, distinct)
        _call(
            endpoint,
            "SetQueueAttributes",
            lambda: sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy}),
        )
        extra = {"RawMessageDelivery": "true"} if raw_delivery else {}
        for topic in distinct:
            created = _call(
                endpoint,
                "Subscribe",
                lambda t=topic: sns.subscribe(
                    TopicArn=t,
                    Protocol="sqs",
                    Endpoint=arn,
                    Attributes=extra,
                    ReturnSubscriptionArn=True,
                ),
            )
            subscription.subscription_arns.append(created["SubscriptionArn"])
    except BaseException:
        # The original error matters more than a failed cleanup.
        with contextlib.suppress(SMClientError):
            subscription.close()
        raise
    return subscription
