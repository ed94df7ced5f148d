"""Reading SageMaker async notifications delivered by SNS to an SQS queue (protocol.md §5):
the SQS requests, and what a message body says.

A message body is either the SNS envelope (``{"Type": "Notification", "TopicArn": ...,
"Message": "<notification JSON>"}``) or, with raw delivery, the notification itself.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Collection
from typing import Any

import attrs

from .._retry import RetryPolicy, run

__all__ = [
    "BATCH",
    "GIVE_UP_AFTER",
    "Kind",
    "Notice",
    "delete",
    "parse",
    "receive",
    "receive_count",
]

# Receives after which a message in a Subscription's queue that no poller handled is deleted.
GIVE_UP_AFTER = 5
BATCH = 10  # SQS's most messages per ReceiveMessage and entries per DeleteMessageBatch


class Kind(enum.Enum):
    NOTICE = "notice"  # a result notification: handle it, then delete
    TEST = "test"  # TestNotification (no invocationStatus): delete
    FOREIGN = "foreign"  # from a topic that is not ours: leave it alone
    UNKNOWN = "unknown"  # not a SageMaker notification: leave it alone


@attrs.frozen
class Notice:
    """One result notification: ``status`` is ``"Completed"`` or ``"Failed"``."""

    inference_id: str
    status: str
    output_location: str | None
    failure_reason: str | None
    topic: str | None


def _loads(text: object) -> dict[str, Any] | None:
    if not isinstance(text, str):
        return None
    try:
        found = json.loads(text)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def parse(body: str, topics: Collection[str]) -> tuple[Kind, Notice | None]:
    """Classify one SQS message body. ``topics``: accepted topic ARNs (empty: any).

    Raw deliveries carry no ``TopicArn``; they are accepted (the queue policy is their guard).
    """
    doc = _loads(body)
    if doc is None:
        return Kind.UNKNOWN, None
    topic: str | None = None
    if doc.get("Type") == "Notification" and "Message" in doc:
        topic = doc.get("TopicArn")
        if topics and topic not in topics:
            return Kind.FOREIGN, None
        doc = _loads(doc.get("Message"))
        if doc is None:
            return Kind.UNKNOWN, None
    if doc.get("eventSource") != "aws:sagemaker":
        return Kind.UNKNOWN, None
    status = doc.get("invocationStatus")
    if status is None:
        return Kind.TEST, None  # TestNotification, or anything else without a status
    inference_id = doc.get("inferenceId")
    if status not in ("Completed", "Failed") or not isinstance(inference_id, str):
        return Kind.UNKNOWN, None
    response = doc.get("responseParameters")
    output = response.get("outputLocation") if isinstance(response, dict) else None
    reason = doc.get("failureReason")
    return Kind.NOTICE, Notice(
        inference_id=inference_id,
        status=status,
        output_location=output if isinstance(output, str) else None,
        failure_reason=reason if isinstance(reason, str) else None,
        topic=topic,
    )


def receive(
    sqs: Any,
    queue_url: str,
    *,
    wait: int,
    count_receives: bool,
    policy: RetryPolicy,
    endpoint: str | None,
) -> list[dict[str, Any]]:
    """Up to 10 messages, long-polling ``wait`` seconds; with ``count_receives`` each
    carries its ``ApproximateReceiveCount`` (see :func:`receive_count`)."""
    params: dict[str, Any] = {
        "QueueUrl": queue_url, "MaxNumberOfMessages": BATCH, "WaitTimeSeconds": wait
    }  # fmt: skip
    if count_receives:
        params["MessageSystemAttributeNames"] = ["ApproximateReceiveCount"]
    response, _ = run(
        policy,
        lambda: sqs.receive_message(**params),
        endpoint=endpoint,
        operation="ReceiveMessage",
    )
    return list(response.get("Messages") or ())


def receive_count(message: dict[str, Any]) -> int:
    """How many times the message was received (0 when not asked for)."""
    count = str((message.get("Attributes") or {}).get("ApproximateReceiveCount", "0"))
    return int(count) if count.isdigit() else 0


def delete(
    sqs: Any, queue_url: str, messages: list[dict[str, Any]], *, policy: RetryPolicy,
    endpoint: str | None,
) -> None:  # fmt: skip
    """Delete ``messages`` (at most 10) in one request."""
    entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
    run(
        policy,
        lambda: sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries),
        endpoint=endpoint,
        operation="DeleteMessageBatch",
    )
