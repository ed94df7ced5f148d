"""Streaming throughput: chunks per second through ``ResponseStream.lines()`` and raw
chunk iteration, against raw boto3 event iteration, on the same loopback answer.

A scripted server in its own process answers every call with the same event stream of
``--chunks`` PayloadPart events (each a short JSON line split across two chunks); the
contenders take turns over ``--rounds`` rounds. Client CPU time per round, median.
Run: ``nox -s bench`` (or ``python tests/benchmarks/bench_stream.py``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Callable
from typing import Any


def _serve(chunks: int, urls: Any, stop: Any) -> None:
    from smclient.local.server import _eventstream as es
    from smclient.testing import Reply, ScriptedRuntime

    parts = []
    for index in range(chunks // 2):
        line = f'{{"token": "word{index}", "index": {index}}}\n'.encode()
        parts += [es.payload_part(line[:10]), es.payload_part(line[10:])]
    body = b"".join(parts)
    reply = Reply.ok(body, content_type="application/vnd.amazon.eventstream")
    with ScriptedRuntime(default=reply) as server:
        urls.put(server.url)
        stop.wait(600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--chunks", type=int, default=20_000)
    args = parser.parse_args()

    import boto3

    from smclient import Endpoint

    ctx = multiprocessing.get_context("spawn")
    urls, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(args.chunks, urls, stop), daemon=True)
    server.start()
    url = urls.get(timeout=60)
    try:
        session = boto3.Session(
            aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
        )
        raw = session.client("sagemaker-runtime", endpoint_url=url)
        ep = Endpoint("bench", region="us-east-1", endpoint_url=url, boto3_session=session)

        def raw_events() -> int:
            response = raw.invoke_endpoint_with_response_stream(EndpointName="bench", Body=b"x")
            return sum(1 for event in response["Body"] if "PayloadPart" in event)

        def sm_chunks() -> int:
            with ep.stream(b"x") as stream:
                return sum(1 for _ in stream)

        def sm_lines() -> int:
            with ep.stream(b"x") as stream:
                return sum(1 for _ in stream.lines())

        contenders: dict[str, Callable[[], int]] = {
            "raw boto3 events": raw_events,
            "smclient chunks": sm_chunks,
            "smclient .lines()": sm_lines,
        }
        for fn in contenders.values():
            fn()
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for number in range(args.rounds):
            order = list(contenders.items())
            order = order[number % 3 :] + order[: number % 3]
            for name, fn in order:
                start = time.process_time()
                fn()
                times[name].append(time.process_time() - start)
        base = statistics.median(times["raw boto3 events"])
        print(f"rounds={args.rounds} chunks/answer={args.chunks} (client CPU, median)")
        for name, values in times.items():
            median = statistics.median(values)
            rate = args.chunks / median
            print(f"   {name:<20}: {rate:10,.0f} chunks/s  ratio to raw {median / base:6.3f}")
    finally:
        stop.set()
        server.join(10)


if __name__ == "__main__":
    main()
