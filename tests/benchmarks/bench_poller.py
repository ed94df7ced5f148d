"""One Poller tracking many pending async invocations: S3 requests and CPU per round, and the
time from a notification being published to ``result()`` returning.

Part 1 (S3 rounds): a real botocore S3 client whose requests are answered in memory by a
``before-send`` event hook (the hook also counts them), so botocore's request building and
XML parsing are measured but no server is. N invocations are pending under one output folder
(their failure objects under a second folder) that already holds ``--done`` older objects.
Reported: requests per round and CPU seconds per round (``time.process_time``, median).

Part 2 (latency): moto in-process (SNS -> SQS, S3), one queue subscribed to the success
topic, a poller long-polling it (``WaitTimeSeconds=20``); a thread publishes the success
notification while ``result()`` waits. Reported: median and max seconds from ``publish``
to ``result()`` returning (result fetched from S3 included).

Run: ``python tests/benchmarks/bench_poller.py [--pending 10000] [--done 2000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from typing import Any
from xml.sax.saxutils import escape

from smclient._asyncinference import AsyncInvocation, Poller

BUCKET = "bench-out"


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def _page(keys: list[str], token: str | None, next_token: str | None) -> bytes:
    items = "".join(
        f"<Contents><Key>{escape(k)}</Key><Size>10</Size><StorageClass>STANDARD</StorageClass>"
        "</Contents>"
        for k in keys
    )
    more = f"<NextContinuationToken>{next_token}</NextContinuationToken>" if next_token else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{BUCKET}</Name><KeyCount>{len(keys)}</KeyCount><MaxKeys>1000</MaxKeys>"
        f"<IsTruncated>{'true' if next_token else 'false'}</IsTruncated>{more}{items}"
        "</ListBucketResult>"
    ).encode()


class FakeS3Endpoint:
    """Hands out one real botocore S3 client answered from memory (and counts requests)."""

    name = "bench"

    def __init__(self, keys: list[str]) -> None:
        import boto3
        from botocore.awsrequest import AWSResponse
        from botocore.compat import HTTPHeaders

        self.requests: Counter[str] = Counter()
        self._keys = sorted(keys)
        self._pages: dict[tuple[str, str], bytes] = {}  # built on first use, then reused
        self._client = boto3.client(
            "s3",
            region_name="us-east-1",
            endpoint_url="http://s3.bench.invalid",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )

        def answer(request: Any, **_: Any) -> Any:
            from urllib.parse import parse_qs, urlsplit

            query = parse_qs(urlsplit(request.url).query)
            self.requests[request.method] += 1
            key = (query.get("prefix", [""])[0], query.get("continuation-token", [""])[0])
            if key not in self._pages:
                self._pages[key] = self._build(*key)
            return AWSResponse(request.url, 200, HTTPHeaders(), _Raw(self._pages[key]))

        self._client.meta.events.register("before-send.s3", answer)

    def _build(self, prefix: str, token: str) -> bytes:
        matching = [k for k in self._keys if k.startswith(prefix)]
        start = int(token or 0)
        more = start + 1000 < len(matching)
        return _page(matching[start : start + 1000], token, str(start + 1000) if more else None)

    def client(self, service: str) -> Any:
        assert service == "s3"
        return self._client


def _uuid(n: int) -> str:
    # Like SageMaker's output names: random, so the keys share no prefix beyond the folder.
    return str(uuid.UUID(int=random.Random(n).getrandbits(128), version=4))


def handle(n: int, folders: int = 1) -> AsyncInvocation:
    folder = f"results/batch-{n % folders}" if folders > 1 else "results"
    return AsyncInvocation(
        endpoint_name="bench",
        inference_id=f"inf-{n}",
        output_location=f"s3://{BUCKET}/{folder}/{_uuid(n)}.out",
        failure_location=f"s3://{BUCKET}/failures/{_uuid(n)}-error.out",
        input_location=f"s3://bench-in/{n}",
        submitted_at=0.0,
        deadline=1e12,
    )


def s3_rounds(pending: int, done: int, rounds: int, folders: int = 1) -> dict[str, float]:
    invs = [handle(n, folders) for n in range(pending)]
    older = [f"results/{_uuid(10**9 + n)}.out" for n in range(done)]
    endpoint = FakeS3Endpoint(older)
    poller = Poller(endpoint)  # type: ignore[arg-type]
    poller.track(invs)
    poller.poll(s3_now=True)  # warm-up: the fake builds its pages once
    cpu, counts = [], []
    for _ in range(rounds):
        before = sum(endpoint.requests.values())
        start = time.process_time()
        found = poller.poll(s3_now=True)
        cpu.append(time.process_time() - start)
        counts.append(sum(endpoint.requests.values()) - before)
        assert not found
        assert len(poller.pending) == pending
    return {
        "pending": pending,
        "requests_per_round": statistics.median(counts),
        "cpu_ms_per_round": statistics.median(cpu) * 1000,
    }


def latency(repeats: int) -> dict[str, float]:
    from moto import mock_aws

    from smclient import JSON, Endpoint
    from smclient.notifications import subscribe

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    seconds = []
    with mock_aws(), Endpoint("bench", region="us-east-1") as ep:
        ep.client("s3").create_bucket(Bucket=BUCKET)
        topic = ep.client("sns").create_topic(Name="bench-ok")["TopicArn"]
        with subscribe(topic, endpoint=ep) as sub:
            poller = sub.poller(wait_time_seconds=20, reconcile_interval=3600)
            for n in range(repeats):
                inv = AsyncInvocation(
                    endpoint_name="bench",
                    inference_id=f"lat-{n}",
                    output_location=f"s3://{BUCKET}/results/lat-{n}.out",
                    failure_location=f"s3://{BUCKET}/failures/lat-{n}-error.out",
                    input_location="s3://bench-in/x",
                    submitted_at=0.0,
                    deadline=time.time() + 60,
                    codec="json",
                    endpoint=ep,
                )
                poller.check(inv)  # the first S3 round happens before the result exists
                published: list[float] = []

                def finish(inv: AsyncInvocation = inv, published: list[float] = published) -> None:
                    time.sleep(0.2)  # let result() reach its long poll first
                    bucket, _, key = inv.output_location[5:].partition("/")
                    ep.client("s3").put_object(Bucket=bucket, Key=key, Body=b'{"ok": 1}')
                    message = {
                        "invocationStatus": "Completed",
                        "inferenceId": inv.inference_id,
                        "responseParameters": {"outputLocation": inv.output_location},
                        "eventSource": "aws:sagemaker",
                        "eventName": "InferenceResult",
                        "eventVersion": "1.0",
                    }
                    published.append(time.perf_counter())
                    ep.client("sns").publish(TopicArn=topic, Message=json.dumps(message))

                thread = threading.Thread(target=finish)
                thread.start()
                try:
                    assert inv.result(timeout=30, poller=poller, codec=JSON) == {"ok": 1}
                    seconds.append(time.perf_counter() - published[0])
                finally:
                    thread.join(30)
    return {"median_s": statistics.median(seconds), "max_s": max(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--done", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-repeats", type=int, default=10)
    args = parser.parse_args()
    for pending, folders in sorted({(1_000, 1), (args.pending, 1), (args.pending, 10)}):
        found = s3_rounds(pending, args.done, args.rounds, folders)
        print(
            f"S3 round, {found['pending']:,} pending in {folders} output folder(s) + 1 failure "
            f"folder, {args.done:,} older objects in results/: "
            f"{found['requests_per_round']:.0f} requests/round, "
            f"{found['cpu_ms_per_round']:.1f} ms CPU/round"
        )
    lat = latency(args.latency_repeats)
    print(
        f"notification published -> result() returned ({args.latency_repeats} runs, SQS long "
        f"polling, moto in-process): median {lat['median_s'] * 1000:.0f} ms, "
        f"max {lat['max_s'] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
