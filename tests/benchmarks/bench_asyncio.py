"""``AsyncEndpoint`` under load, side by side in one run against the same loopback server
(bench_invoke's asyncio server in its own process, answering after ``--latency`` seconds):

1. ``--concurrency`` (default 1,000) concurrent ``await ep.invoke(...)`` on one event loop;
2. the sync ``Endpoint`` (fast transport) on ``--threads`` (default 64) threads;
3. ``asyncio.to_thread(boto3 invoke_endpoint)`` with the same concurrency, as asyncio users
   do today (the default executor: min(32, cores + 4) threads).

Throughput efficiency = requests per second / (concurrency / latency); client CPU per call.
Then the asyncio HTTP clients considered for the transport, on the same signed request bytes:
smclient's minimal client, aiohttp and httpx (each only when installed).

Run: ``nox -s bench`` (or ``python tests/benchmarks/bench_asyncio.py [--requests N]
[--concurrency N] [--latency S]``).
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench_invoke import BODY, start_server


def measure(label: str, theory: float, run: Callable[[], int]) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        count = run()
    except Exception as exc:  # a client that cannot keep up: say so, go on
        print(f"   {label:<44}: failed: {type(exc).__name__}: {exc}")
        return
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    rate = count / wall
    print(
        f"   {label:<44}: {rate:7.0f} req/s  efficiency {rate / theory:5.2f}  "
        f"client CPU {cpu / count * 1e6:6.0f} us/call"
    )


async def _gather(n: int, concurrency: int, call: Callable[[], Awaitable[Any]]) -> int:
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()

    import boto3

    from smclient import AsyncEndpoint, ClientConfig, Endpoint

    url, server = start_server(args.latency)
    try:
        session = boto3.Session(
            aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
        )
        n, c = args.requests, args.concurrency
        theory_async = c / args.latency
        theory_threads = args.threads / args.latency
        print(
            f"== {n} requests, {args.latency * 1000:.0f} ms server latency "
            f"(theoretical: {theory_async:.0f} req/s at {c} concurrent, "
            f"{theory_threads:.0f} req/s on {args.threads} threads)"
        )

        # Keep as many idle connections as there are concurrent calls (the default 50 would
        # close and reopen connections all the time at 1,000 concurrent).
        config = ClientConfig(max_pool_connections=max(c, args.threads))

        async def smclient_async() -> int:
            async with AsyncEndpoint(
                "bench", endpoint_url=url, boto3_session=session, config=config
            ) as ep:
                assert await ep.transport() == "fast"
                await _gather(c, c, lambda: ep.invoke(BODY, content_type="application/json"))
                return await _gather(n, c, lambda: ep.invoke(BODY, content_type="application/json"))

        measure(
            f"AsyncEndpoint, {c} concurrent on one loop",
            theory_async,
            lambda: asyncio.run(smclient_async()),
        )

        ep = Endpoint("bench", endpoint_url=url, boto3_session=session, config=config)

        def threads() -> int:
            left = [n]
            lock = threading.Lock()

            def worker() -> None:
                while True:
                    with lock:
                        if left[0] <= 0:
                            return
                        left[0] -= 1
                    ep.invoke(BODY, content_type="application/json")

            pool = [threading.Thread(target=worker) for _ in range(args.threads)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            return n

        ep.invoke(BODY, content_type="application/json")
        measure(f"sync Endpoint, {args.threads} threads", theory_threads, threads)

        raw = session.client("sagemaker-runtime", endpoint_url=url)

        def boto3_call() -> None:
            raw.invoke_endpoint(EndpointName="bench", Body=BODY, ContentType="application/json")[
                "Body"
            ].read()

        async def to_thread() -> int:
            return await _gather(n // 5, c, lambda: asyncio.to_thread(boto3_call))

        boto3_call()
        measure(
            f"asyncio.to_thread(boto3), {c} concurrent",
            theory_async,
            lambda: asyncio.run(to_thread()),
        )
        clients(url, session, n, c, theory_async, config)
    finally:
        server.kill()
        server.join(10)


def clients(url: str, session: Any, n: int, c: int, theory: float, config: Any) -> None:
    """The asyncio HTTP clients on the fast transport's own signed request bytes."""
    from smclient import Endpoint
    from smclient._asynchttp import AsyncPools, send_async
    from smclient._fasthttp import FastTransport

    ep = Endpoint("bench", endpoint_url=url, boto3_session=session, config=config)
    fast = ep.requester.factory.transport()
    assert isinstance(fast, FastTransport)
    request = ep.requester.build(BODY, content_type="application/json")
    path = fast.template.prefix + request.path
    print("== asyncio HTTP clients, same signed request, same concurrency")

    async def minimal() -> int:
        pools = AsyncPools()
        count = await _gather(n, c, lambda: send_async(fast, pools, request))
        await pools.aclose()
        return count

    measure("smclient minimal asyncio client", theory, lambda: asyncio.run(minimal()))

    def signed_headers() -> dict[str, str]:
        return dict(fast.headers(request, path, time.time()))

    try:
        import aiohttp
    except ImportError:
        print("   (aiohttp not installed)")
    else:

        async def with_aiohttp() -> int:
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:

                async def call() -> None:
                    async with http.post(url + path, data=BODY, headers=signed_headers()) as r:
                        await r.read()

                return await _gather(n, c, call)

        measure(f"aiohttp {aiohttp.__version__}", theory, lambda: asyncio.run(with_aiohttp()))
    try:
        import httpx
    except ImportError:
        print("   (httpx not installed)")
    else:

        async def with_httpx() -> int:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=c)
            async with httpx.AsyncClient(limits=limits, timeout=70) as http:

                async def call() -> None:
                    (await http.post(url + path, content=BODY, headers=signed_headers())).read()

                return await _gather(n // 2, c, call)

        measure(f"httpx {httpx.__version__}", theory, lambda: asyncio.run(with_httpx()))


if __name__ == "__main__":
    main()
