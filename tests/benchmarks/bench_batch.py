"""Batch scoring throughput against a loopback server that answers every call after a fixed
latency (default 50 ms), in one run:

1. ``Endpoint.invoke_many`` against a hand-written ``ThreadPoolExecutor`` over a plain boto3
   client, at equal concurrency, in interleaved rounds (ratio of calls/s, and efficiency:
   calls/s divided by the ideal ``concurrency / latency``). The boto3 pool is given twice: as
   users write it (boto3's default config: 10 pooled connections, botocore's retries) and
   tuned (pooled connections = concurrency, retries pinned, as smclient's own settings).
2. ``Scorer`` on Dask (``LocalCluster``) and Ray Data (local cluster) with 1 and 2 worker
   processes: rows/s and the scaling factor from 1 to 2 workers.

The server is an asyncio loop in its own process (it sleeps without using CPU, so client
CPU is what limits throughput at high concurrency). Run: ``nox -s bench`` or
``python tests/benchmarks/bench_batch.py [--latency S] [--calls N] [--concurrency C ...]
[--rounds R] [--rows N] [--skip-engines] [--skip-one-machine]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

BODY = b'{"inputs": [1, 2, 3]}'
ANSWER = b'{"outputs": [0.1, 0.9]}'


def _serve(latency: float, port_queue: Any, stop: Any) -> None:
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"x-Amzn-Invoked-Production-Variant: AllTraffic\r\nx-amzn-RequestId: bench\r\n"
        b"Content-Length: " + str(len(ANSWER)).encode() + b"\r\n\r\n" + ANSWER
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                await asyncio.sleep(latency)
                writer.write(response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_queue.put(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        while not stop.is_set():
            await asyncio.sleep(0.2)
        server.close()

    asyncio.run(main())


def start_server(latency: float) -> tuple[str, Any, Any]:
    ctx = multiprocessing.get_context("spawn")
    urls, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_serve, args=(latency, urls, stop), daemon=True)
    proc.start()
    return urls.get(timeout=60), stop, proc


def one_machine(url: str, args: argparse.Namespace) -> None:
    import boto3
    from botocore.config import Config

    from smclient import ClientConfig, Endpoint

    session = boto3.Session(
        aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
    )
    print(f"== one machine: {args.calls} calls per run, latency {args.latency * 1000:.0f} ms")
    for concurrency in args.concurrency:
        naive = session.client("sagemaker-runtime", endpoint_url=url)
        tuned = session.client(
            "sagemaker-runtime",
            endpoint_url=url,
            config=Config(
                max_pool_connections=concurrency,
                retries={"mode": "standard", "total_max_attempts": 1},
                read_timeout=70,
            ),
        )
        ep = Endpoint(
            "bench",
            region="us-east-1",
            endpoint_url=url,
            boto3_session=session,
            config=ClientConfig(max_pool_connections=max(50, concurrency)),
        )

        def pool_run(client: Any, n: int, c: int = concurrency) -> None:
            def call(_: int) -> bytes:
                response = client.invoke_endpoint(
                    EndpointName="bench", Body=BODY, ContentType="application/json"
                )
                data: bytes = response["Body"].read()
                return data

            with ThreadPoolExecutor(max_workers=c) as pool:
                for _ in pool.map(call, range(n)):
                    pass

        def many_run(n: int, c: int = concurrency, ep: Any = ep, wide: bool = False) -> None:
            for result in ep.invoke_many(
                (BODY for _ in range(n)),
                concurrency=c,
                window=2 * c if wide else None,
                content_type="application/json",
            ):
                result.unwrap()

        contenders = {
            "ThreadPoolExecutor + boto3 (default config)": lambda n, c=naive: pool_run(c, n),
            "ThreadPoolExecutor + boto3 (pool = concurrency)": lambda n, c=tuned: pool_run(c, n),
            "Endpoint.invoke_many": many_run,
            "Endpoint.invoke_many, window = 2 x concurrency": lambda n: many_run(n, wide=True),
        }
        for fn in contenders.values():  # warm up: clients, connections
            fn(min(args.calls, 4 * concurrency))
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        cpu: dict[str, list[float]] = {name: [] for name in contenders}
        for number in range(args.rounds):
            order = list(contenders.items())
            order = order[number % len(order) :] + order[: number % len(order)]
            for name, fn in order:
                wall, used = time.perf_counter(), time.process_time()
                fn(args.calls)
                rates[name].append(args.calls / (time.perf_counter() - wall))
                cpu[name].append((time.process_time() - used) / args.calls)
        ideal = concurrency / args.latency
        base = statistics.median(rates["ThreadPoolExecutor + boto3 (default config)"])
        tuned_base = statistics.median(rates["ThreadPoolExecutor + boto3 (pool = concurrency)"])
        print(f"-- concurrency {concurrency} (ideal {ideal:.0f} calls/s), median of {args.rounds}")
        for name in contenders:
            rate = statistics.median(rates[name])
            print(
                f"   {name:<48}: {rate:8.1f} calls/s  efficiency {rate / ideal:5.2f}  "
                f"vs default {rate / base:5.2f}x  vs tuned {rate / tuned_base:5.2f}x  "
                f"client CPU {statistics.median(cpu[name]) * 1e6:6.0f} us/call"
            )
        naive.close()
        tuned.close()
        ep.close()


def _frame(rows: int) -> Any:
    import pandas as pd

    return pd.DataFrame({"x": range(rows)})


def dask_scaling(url: str, args: argparse.Namespace) -> dict[int, float]:
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from smclient import ClientConfig, Endpoint, Scorer

    ep = Endpoint(
        "bench", region="us-east-1", endpoint_url=url, config=ClientConfig(sign_requests=False)
    )
    scorer = Scorer(ep, concurrency=args.engine_concurrency)
    rates = {}
    for workers in (1, 2):
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            Client(cluster),
        ):
            best = 0.0
            for number in range(args.rounds + 1):  # the first round warms up every worker
                # New data every round: Dask would hand back results it still holds for the
                # same keys instead of computing them again.
                ddf = dd.from_pandas(_frame(args.rows).assign(run=number), npartitions=8)
                scored = ddf.map_partitions(scorer, meta=scorer.meta(ddf))
                wall = time.perf_counter()
                out = scored.compute()
                if not number:
                    continue
                best = max(best, args.rows / (time.perf_counter() - wall))
                assert out["error"].isna().all(), out["error"].dropna().head()
            rates[workers] = best
    return rates


def _timed_scorer() -> Any:
    from smclient import Scorer

    class TimedScorer(Scorer):
        """Stamps each batch with its start and end (seconds since the epoch), so that the
        rate can exclude the actors' start-up, which Ray pays on every map_batches."""

        def __call__(self, batch: Any) -> Any:
            start = time.time()
            out = super().__call__(batch)
            out["t0"], out["t1"] = start, time.time()
            return out

    return TimedScorer


def ray_scaling(url: str, args: argparse.Namespace) -> dict[int, float]:
    import ray

    from smclient import ClientConfig, Endpoint

    ep = Endpoint(
        "bench", region="us-east-1", endpoint_url=url, config=ClientConfig(sign_requests=False)
    )
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        frame = _frame(args.rows)
        step = args.rows // 8
        blocks = [frame.iloc[i : i + step] for i in range(0, args.rows, step)]
        rates = {}
        timed = _timed_scorer()
        for workers in (1, 2):
            best = 0.0
            for _ in range(args.rounds):
                ds = ray.data.from_pandas(blocks)
                out = ds.map_batches(
                    timed,
                    fn_constructor_args=(ep,),
                    fn_constructor_kwargs={"concurrency": args.engine_concurrency},
                    compute=ray.data.ActorPoolStrategy(size=workers),
                    batch_size=step,
                    batch_format="pandas",
                ).to_pandas()
                best = max(best, args.rows / (out["t1"].max() - out["t0"].min()))
                assert out["error"].isna().all()
            rates[workers] = best
        return rates
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per call")
    parser.add_argument("--calls", type=int, default=1500, help="calls per run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 50])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=4000, help="rows per engine run")
    parser.add_argument("--engine-concurrency", type=int, default=50, help="per worker")
    parser.add_argument("--skip-engines", action="store_true")
    parser.add_argument("--skip-one-machine", action="store_true")
    args = parser.parse_args()

    url, stop, proc = start_server(args.latency)
    try:
        if not args.skip_one_machine:
            one_machine(url, args)
        if args.skip_engines:
            return
        print(
            f"== engines: {args.rows} rows, one request per row, {args.engine_concurrency} "
            "in flight per worker process; best of "
            f"{args.rounds} (Dask: a warm-up round first; Ray: from the first batch's start to "
            "the last one's end, actor start-up excluded)"
        )
        for name, fn in (("Dask LocalCluster", dask_scaling), ("Ray Data", ray_scaling)):
            try:
                rates = fn(url, args)
            except ImportError as exc:
                print(f"-- {name}: skipped ({exc})")
                continue
            print(
                f"-- {name:<18}: 1 worker {rates[1]:7.1f} rows/s, 2 workers {rates[2]:7.1f} "
                f"rows/s, scaling {rates[2] / rates[1]:4.2f}x"
            )
    finally:
        stop.set()
        proc.join(10)


if __name__ == "__main__":
    main()
