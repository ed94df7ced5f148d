"""Per-call overhead of ``Endpoint.invoke`` against raw boto3 ``invoke_endpoint``.

Both call the same loopback server (a ScriptedRuntime in its own process, echoing a
small JSON body), both sign requests with the same fake credentials, in interleaved
rounds in one run; the figure is the ratio of the medians. Run: ``nox -s bench``
(or ``python tests/benchmarks/bench_invoke.py [--rounds N] [--calls N]``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from typing import Any

BODY = b'{"inputs": [1, 2, 3]}'


def _serve(port_queue: Any, stop: Any) -> None:
    from smclient.testing import Reply, ScriptedRuntime

    with ScriptedRuntime(default=Reply.ok(b'{"outputs": [0.1, 0.9]}')) as server:
        port_queue.put(server.url)
        stop.wait(600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=100, help="calls per client per round")
    args = parser.parse_args()

    import boto3

    from smclient import Endpoint

    ctx = multiprocessing.get_context("spawn")
    urls, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(urls, stop), daemon=True)
    server.start()
    url = urls.get(timeout=60)
    try:
        session = boto3.Session(
            aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
        )
        raw = session.client("sagemaker-runtime", endpoint_url=url)
        ep = Endpoint("bench", region="us-east-1", endpoint_url=url, boto3_session=session)
        # The same botocore settings smclient uses (70 s read timeout, retries pinned):
        # separates the wrapper's own cost from the cost of the client settings.
        pinned = session.client(
            "sagemaker-runtime", endpoint_url=url, config=ep.config.to_botocore()
        )

        def call_raw() -> None:
            raw.invoke_endpoint(EndpointName="bench", Body=BODY, ContentType="application/json")[
                "Body"
            ].read()

        def call_pinned() -> None:
            pinned.invoke_endpoint(EndpointName="bench", Body=BODY, ContentType="application/json")[
                "Body"
            ].read()

        def call_smclient() -> None:
            ep.invoke(BODY, content_type="application/json")

        def timed(fn: Any) -> tuple[float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(args.calls):
                fn()
            return (
                (time.perf_counter() - wall) / args.calls,
                (time.process_time() - cpu) / args.calls,
            )

        contenders = {
            "raw boto3, default config": call_raw,
            "raw boto3, smclient's config": call_pinned,
            "smclient Endpoint.invoke": call_smclient,
        }
        for fn in contenders.values():  # warm up: clients, connections, caches
            timed(fn)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
        for number in range(args.rounds):
            order = list(contenders.items())
            order = order[number % 3 :] + order[: number % 3]  # rotate who goes first
            for name, fn in order:
                times[name].append(timed(fn))
        print(f"rounds={args.rounds} calls/round={args.calls} (interleaved, same server)")
        print("client CPU time is the steadier figure: the server runs in another process")
        for index, label in ((0, "wall"), (1, "client CPU")):
            medians = {name: statistics.median(t[index] for t in v) for name, v in times.items()}
            base = medians["raw boto3, default config"]
            print(f"-- {label} time per call (median of rounds)")
            for name, value in medians.items():
                print(f"   {name:<30}: {value * 1e6:8.1f} us  ratio {value / base:6.3f}")
            same = medians["smclient Endpoint.invoke"] / medians["raw boto3, smclient's config"]
            print(f"   {'smclient / same-config boto3':<30}: {'':8}     ratio {same:6.3f}")
    finally:
        stop.set()
        server.join(10)
    print(f"-- smclient's own work per call (no network): {own_work_us():.1f} us")


def own_work_us(calls: int = 20000) -> float:
    """Endpoint.invoke with a client that answers at once: the wrapper's cost alone
    (validation, encoding, retry bookkeeping, result), free of network noise."""
    import io
    import timeit

    from smclient import Endpoint

    class InstantClient:
        def invoke_endpoint(self, **params: Any) -> dict[str, Any]:
            return {"Body": io.BytesIO(b"{}"), "ResponseMetadata": {"RequestId": "r"}}

    ep = Endpoint("bench", region="us-east-1")
    ep._factory._clients["sagemaker-runtime"] = InstantClient()  # benchmark-only seam
    run = timeit.Timer(lambda: ep.invoke(BODY, content_type="application/json"))
    return min(run.repeat(repeat=5, number=calls)) / calls * 1e6


if __name__ == "__main__":
    main()
