"""The local endpoint's throughput for small payloads: invocations per second with raw
HTTP keep-alive clients (1 and 8 threads) and with boto3, so it is known not to be the
bottleneck when the client is measured. The server runs in its own process.
Run: ``nox -s bench`` (or ``python tests/benchmarks/bench_local.py [--calls N]``).
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import threading
import time
from typing import Any
from urllib.parse import urlsplit

BODY = b'{"inputs": [1]}'


def _echo(body: bytes, content_type: str | None, accept: str | None) -> bytes:
    return body


def _serve(urls: Any, stop: Any) -> None:
    from smclient.local import LocalEndpoint

    with LocalEndpoint(_echo, name="bench") as local:
        urls.put(local.url)
        stop.wait(600)


def _raw_calls(url: str, calls: int) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        for _ in range(calls):
            conn.request(
                "POST",
                "/endpoints/bench/invocations",
                body=BODY,
                headers={"Content-Type": "application/json"},
            )
            response = conn.getresponse()
            response.read()
            assert response.status == 200
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="calls per measurement")
    args = parser.parse_args()

    import boto3

    ctx = multiprocessing.get_context("spawn")
    urls, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(urls, stop), daemon=True)
    server.start()
    url = urls.get(timeout=60)
    try:
        _raw_calls(url, 200)  # warm up
        start = time.perf_counter()
        _raw_calls(url, args.calls)
        one = args.calls / (time.perf_counter() - start)

        threads = [
            threading.Thread(target=_raw_calls, args=(url, args.calls // 8)) for _ in range(8)
        ]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        eight = (args.calls // 8 * 8) / (time.perf_counter() - start)

        client = boto3.client(
            "sagemaker-runtime",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        calls = args.calls // 4
        start = time.perf_counter()
        for _ in range(calls):
            client.invoke_endpoint(EndpointName="bench", Body=BODY)["Body"].read()
        via_boto3 = calls / (time.perf_counter() - start)
        print(f"local endpoint, {len(BODY)}-byte JSON body, server in its own process")
        print(f"   raw HTTP keep-alive, 1 thread : {one:8,.0f} invocations/s")
        print(f"   raw HTTP keep-alive, 8 threads: {eight:8,.0f} invocations/s")
        print(f"   boto3 invoke_endpoint, 1 thread: {via_boto3:8,.0f} invocations/s")
    finally:
        stop.set()
        server.join(10)


if __name__ == "__main__":
    main()
