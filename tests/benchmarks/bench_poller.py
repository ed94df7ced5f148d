"""Async inference at scale, against a moto server in its own process (loopback, port 0).

1. **S3 rounds**: N inferences pending on one :class:`Poller` (outputs in 1 or 10 folders,
   failures in another) next to ``--done`` older objects. Reported per round: requests (counted
   with a botocore ``before-call`` hook), client CPU (``time.process_time``; the server's work
   is in its process) and wall time, medians of ``--rounds``.
2. **Memory**: bytes per handle and per pending inference in the poller (``tracemalloc``).
3. **Notification -> result**: 10,000 pending on a poller that reads an SQS queue subscribed to
   the success topic (SNS -> SQS inside moto) and reconciles with S3; a thread finishes
   ``--finish`` of them, writing the output and publishing the notification, every fourth
   one publishing 50 ms *before* the object is written. Reported: p50/p99/max seconds from
   publish to ``as_completed`` yielding it, SQS requests per result.
4. **Upload**: ``submit`` of a 1 GiB sparse file (a path, then an open file object) in a child
   process; peak RSS (``VmHWM`` after resetting it) minus the RSS before the upload.

Run: ``nox -s bench`` or ``python tests/benchmarks/bench_poller.py [--pending 10000]
[--done 2000] [--rounds 5] [--finish 200] [--upload-mib 1024]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BUCKET = "bench-out"
SERVER = (
    "import sys; from moto.server import ThreadedMotoServer\n"
    "server = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)\n"
    "server.start(); print(server.get_host_and_port()[1], flush=True)\n"
    "sys.stdin.read(); server.stop()\n"
)
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server in its own process on a loopback port the OS picks."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _uuid(n: int) -> str:
    # Like SageMaker's output names: random, so the keys share no prefix beyond the folder.
    return str(uuid.UUID(int=random.Random(n).getrandbits(128), version=4))


def handle(
    n: int, endpoint: Any, folders: int = 1, prefix: str = "results", bucket: str = BUCKET
) -> Any:
    from smclient import AsyncInvocation

    folder = f"{prefix}/batch-{n % folders}" if folders > 1 else prefix
    return AsyncInvocation(
        endpoint_name="bench",
        inference_id=f"inf-{prefix}-{n}",
        output_location=f"s3://{bucket}/{folder}/{_uuid(n)}.out",
        failure_location=f"s3://{bucket}/{prefix}-failures/{_uuid(n)}-error.out",
        input_location=f"s3://bench-in/{n}",
        submitted_at=time.time(),
        deadline=time.time() + 3600,
        region="us-east-1",
        endpoint=endpoint,
    )


def counting(*clients: Any) -> Counter[str]:
    counts: Counter[str] = Counter()

    def seen(model: Any, **_: Any) -> None:
        counts[model.name] += 1

    for client in clients:
        client.meta.events.register("before-call", seen)
    return counts


def s3_rounds(url: str, pending: int, done: int, rounds: int, folders: int) -> dict[str, float]:
    from smclient import Endpoint, Poller

    with Endpoint("bench", region="us-east-1", aws_endpoint_url=url) as ep:
        s3 = ep.client("s3")
        counts = counting(s3)
        invs = [handle(n, ep, folders, prefix=f"r{folders}") for n in range(pending)]
        poller = Poller(ep)
        poller.track(invs)
        poller.poll(s3_now=True)  # warm-up (clients, connections)
        cpu, wall, requests = [], [], []
        for _ in range(rounds):
            before = sum(counts.values())
            start, start_wall = time.process_time(), time.perf_counter()
            found = poller.poll(s3_now=True)
            cpu.append(time.process_time() - start)
            wall.append(time.perf_counter() - start_wall)
            requests.append(sum(counts.values()) - before)
            assert not found
            assert len(poller.pending) == pending
    return {
        "requests": statistics.median(requests),
        "cpu_ms": statistics.median(cpu) * 1000,
        "wall_ms": statistics.median(wall) * 1000,
    }


def memory(pending: int) -> dict[str, float]:
    from smclient import Poller

    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    invs = [handle(n, None) for n in range(pending)]
    made = tracemalloc.take_snapshot()
    poller = Poller()
    poller.track(invs)
    tracked = tracemalloc.take_snapshot()
    tracemalloc.stop()

    def size(a: Any, b: Any) -> int:
        return sum(stat.size_diff for stat in b.compare_to(a, "filename"))

    json_bytes = statistics.mean(len(inv.to_json()) for inv in invs[:100])
    return {
        "handle": size(base, made) / pending,
        "poller": size(made, tracked) / pending,
        "json": json_bytes,
    }


def latency(url: str, pending: int, finish: int, done: int) -> dict[str, float]:
    from smclient import Endpoint
    from smclient.notifications import subscribe

    with Endpoint("bench", region="us-east-1", aws_endpoint_url=url) as ep:
        s3 = ep.client("s3")
        topic = ep.client("sns").create_topic(Name="bench-ok")["TopicArn"]
        # A bucket of its own: moto lists a bucket in time proportional to all its objects
        # (S3 does not), which would make every listing here pay for the S3 part's objects.
        s3.create_bucket(Bucket="bench-lat")
        invs = [handle(n, ep, prefix="lat", bucket="bench-lat") for n in range(pending)]
        chosen = random.Random(7).sample(invs, finish)
        with subscribe(topic, endpoint=ep) as sub:
            poller = sub.poller(wait_time_seconds=20, reconcile_interval=30)
            counts = counting(ep.client("sqs"), s3)
            poller.track(invs)
            poller.poll(s3_now=True)  # the first S3 round, before anything finished
            published: dict[str, float] = {}
            early_keys: set[str] = set()

            def finisher() -> None:
                time.sleep(0.5)  # let the main thread reach its long poll
                sns = ep.client("sns")
                for n, inv in enumerate(chosen):
                    bucket, _, key = inv.output_location[5:].partition("/")
                    message = json.dumps({
                        "invocationStatus": "Completed",
                        "inferenceId": inv.inference_id,
                        "responseParameters": {"outputLocation": inv.output_location},
                        "eventSource": "aws:sagemaker",
                        "eventName": "InferenceResult",
                        "eventVersion": "1.0",
                    })  # fmt: skip
                    if n % 4 == 0:  # the notification 50 ms before the object is visible
                        published[inv.key] = time.perf_counter()
                        sns.publish(TopicArn=topic, Message=message)
                        time.sleep(0.05)
                        s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
                        early_keys.add(inv.key)
                    else:
                        s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
                        published[inv.key] = time.perf_counter()
                        sns.publish(TopicArn=topic, Message=message)
                    time.sleep(0.02)

            thread = threading.Thread(target=finisher, daemon=True)
            before = Counter(counts)
            start_cpu = time.process_time()
            thread.start()
            seconds: list[float] = []
            early_seconds: list[float] = []
            sources: Counter[str] = Counter()
            for completion in poller.as_completed(chosen, timeout=600):
                took = time.perf_counter() - published[completion.invocation.key]
                seconds.append(took)
                if completion.invocation.key in early_keys:
                    early_seconds.append(took)
                sources[completion.source] += 1
            cpu = time.process_time() - start_cpu
            thread.join(60)
            used = counts - before
    seconds.sort()
    early_seconds.sort()
    return {
        "early_p50": statistics.median(early_seconds),
        "early_max": early_seconds[-1],
        "p50": statistics.median(seconds),
        "p99": seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))],
        "max": seconds[-1],
        "early": len(early_keys),
        "sqs_per_result": (used["ReceiveMessage"] + used["DeleteMessageBatch"]) / finish,
        "heads": used["HeadObject"],
        "lists": used["ListObjectsV2"],
        "from_notification": sources["notification"],
        "cpu_s": cpu,
    }


def upload_child(url: str, size: int, kind: str) -> None:
    """Runs in a fresh process: peak RSS of one submit() of a ``size``-byte sparse file."""
    from smclient import Endpoint
    from smclient._asyncinference import submit

    def status(field: str) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
        raise LookupError(field)

    with (
        tempfile.TemporaryDirectory() as tmp,
        Endpoint("bench", region="us-east-1", aws_endpoint_url=url, endpoint_url=url) as ep,
    ):
        big = Path(tmp, "input.bin")
        with open(big, "wb") as f:
            f.truncate(size)  # sparse: no disk or memory used for the data
        ep.client("s3").create_bucket(Bucket="bench-in")
        submit(ep, b"warm-up", input_prefix="s3://bench-in/in")  # clients built, imports done
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        base = status("VmRSS:")
        start = time.perf_counter()
        with open(big, "rb") as fileobj:
            body = big if kind == "path" else fileobj
            submit(ep, body, input_prefix="s3://bench-in/in")
        took = time.perf_counter() - start
        peak = status("VmHWM:")
    print(json.dumps({"base": base, "peak": peak, "seconds": took}))


def upload(url: str, size: int, kind: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--upload-child", url, str(size), kind],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **CREDENTIALS},
        timeout=900,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--done", type=int, default=2_000, help="older objects in results/")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--finish", type=int, default=200, help="results in the latency run")
    parser.add_argument("--upload-mib", type=int, default=1024)
    parser.add_argument("--skip", default="", help="comma-separated: s3,memory,latency,upload")
    parser.add_argument("--upload-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    if args.upload_child:
        url, size, kind = args.upload_child
        upload_child(url, int(size), kind)
        return
    skip = set(args.skip.split(","))
    with moto_server() as url:
        import boto3

        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        for n in range(args.done if "s3" not in skip else 0):
            for prefix in ("r1", "r10"):  # finished long ago, still in the output folders
                s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{_uuid(10**9 + n)}.out", Body=b"")
        print(f"moto server {url} (own process); {args.done:,} older objects per output prefix")
        if "s3" not in skip:
            for pending, folders in ((1_000, 1), (args.pending, 1), (args.pending, 10)):
                found = s3_rounds(url, pending, args.done, args.rounds, folders)
                print(
                    f"S3 round, {pending:,} pending in {folders} output folder(s) + 1 failure "
                    f"folder: {found['requests']:.0f} requests/round, "
                    f"{found['cpu_ms']:.0f} ms client CPU/round, {found['wall_ms']:.0f} ms wall"
                )
        if "memory" not in skip:
            mem = memory(args.pending)
            print(
                f"memory, {args.pending:,} pending: {mem['handle']:.0f} B per handle, "
                f"{mem['poller']:.0f} B per pending inference in the poller; "
                f"{mem['json']:.0f} B of JSON per handle"
            )
        if "latency" not in skip:
            lat = latency(url, args.pending, args.finish, args.done)
            print(
                f"notification -> result, {args.pending:,} pending, {args.finish} finished "
                f"({lat['early']:.0f} notified 50 ms before the object): "
                f"p50 {lat['p50'] * 1000:.0f} ms, p99 {lat['p99'] * 1000:.0f} ms, "
                f"max {lat['max'] * 1000:.0f} ms (notified early: p50 "
                f"{lat['early_p50'] * 1000:.0f} ms, max {lat['early_max'] * 1000:.0f} ms); "
                f"{lat['sqs_per_result']:.2f} SQS requests "
                f"per result, {lat['heads']:.0f} HeadObject, {lat['lists']:.0f} ListObjectsV2, "
                f"{lat['from_notification']:.0f} via notification; "
                f"client CPU {lat['cpu_s']:.1f} s"
            )
        if "upload" not in skip:
            size = args.upload_mib * 1024 * 1024
            for kind in ("path", "file object"):
                up = upload(url, size, kind)
                print(
                    f"submit() of a {args.upload_mib:,} MiB {kind}: peak RSS "
                    f"+{(up['peak'] - up['base']) / 2**20:.0f} MiB above the "
                    f"{up['base'] / 2**20:.0f} MiB before it, {up['seconds']:.1f} s"
                )


if __name__ == "__main__":
    main()
