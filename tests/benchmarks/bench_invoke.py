"""Per-call cost and throughput of ``Endpoint.invoke`` (fast transport and boto3 fallback)
against raw boto3 ``invoke_endpoint``, side by side in one run on the same loopback server.

1. Per call, zero server latency: interleaved rounds; client wall and CPU time per call,
   median of rounds, as a ratio of raw boto3's. The server runs in its own process.
2. Throughput, ``--threads`` threads (default 64) against a server answering after
   ``--latency`` seconds (default 0.05): efficiency = requests per second divided by the
   theoretical ``threads / latency``.
3. HTTP clients on the same signed request: urllib3's pool, ``http.client``, the fast
   transport.
4. Signers: botocore's ``SigV4Auth``, smclient's signer and awscrt's (when installed).

Run: ``nox -s bench`` (or ``python tests/benchmarks/bench_invoke.py [--rounds N] [--calls N]
[--threads N] [--latency S] [--seconds S]``). The server is a minimal asyncio HTTP/1.1 server
(keep-alive, Content-Length bodies) so that it is not the bottleneck.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

BODY = b'{"inputs": [1, 2, 3]}'
ANSWER = b'{"outputs": [0.1, 0.9]}'


def _serve(port_queue: Any, latency: float) -> None:
    import asyncio

    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"x-Amzn-Invoked-Production-Variant: AllTraffic\r\nx-amzn-RequestId: bench\r\n"
        b"Content-Length: " + str(len(ANSWER)).encode() + b"\r\n\r\n" + ANSWER
    )

    class Answer(asyncio.Protocol):
        """Keep-alive HTTP/1.1, Content-Length bodies; a Protocol (not streams) so that the
        server's CPU per request stays well below the clients' under test."""

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buffer = b""
            self.loop = asyncio.get_running_loop()

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                length = 0
                for line in self.buffer[:end].split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if len(self.buffer) < end + 4 + length:
                    return
                self.buffer = self.buffer[end + 4 + length :]
                if latency:
                    self.loop.call_later(latency, self.reply)
                else:
                    self.reply()

        def reply(self) -> None:
            if not self.transport.is_closing():
                self.transport.write(answer)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Answer, "127.0.0.1", 0, backlog=4096)
        port_queue.put(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        await asyncio.sleep(3600)

    asyncio.run(main())


def start_server(latency: float) -> tuple[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    urls = ctx.Queue()
    process = ctx.Process(target=_serve, args=(urls, latency), daemon=True)
    process.start()
    return urls.get(timeout=60), process


def contenders(url: str) -> dict[str, Callable[[], Any]]:
    import boto3

    from smclient import ClientConfig, Endpoint

    session = boto3.Session(
        aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
    )
    raw = session.client("sagemaker-runtime", endpoint_url=url)
    fast = Endpoint("bench", endpoint_url=url, boto3_session=session)
    fallback = Endpoint(
        "bench",
        endpoint_url=url,
        boto3_session=session,
        config=ClientConfig(transport="boto3"),
    )
    assert fast.transport == "fast"
    assert fallback.transport == "boto3"
    pinned = session.client("sagemaker-runtime", endpoint_url=url, config=fast.config.to_botocore())

    def call_raw() -> None:
        raw.invoke_endpoint(EndpointName="bench", Body=BODY, ContentType="application/json")[
            "Body"
        ].read()

    def call_pinned() -> None:
        pinned.invoke_endpoint(EndpointName="bench", Body=BODY, ContentType="application/json")[
            "Body"
        ].read()

    return {
        "raw boto3, default config": call_raw,
        "raw boto3, smclient's config": call_pinned,
        "smclient, fast transport": lambda: fast.invoke(BODY, content_type="application/json"),
        "smclient, boto3 transport": lambda: fallback.invoke(BODY, content_type="application/json"),
    }


def per_call(args: argparse.Namespace) -> None:
    url, server = start_server(0.0)
    try:
        calls = contenders(url)

        def timed(fn: Callable[[], Any]) -> tuple[float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(args.calls):
                fn()
            return (
                (time.perf_counter() - wall) / args.calls,
                (time.process_time() - cpu) / args.calls,
            )

        for fn in calls.values():  # warm up: clients, connections, caches
            timed(fn)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
        for number in range(args.rounds):
            order = list(calls.items())
            shift = number % len(order)
            for name, fn in order[shift:] + order[:shift]:  # rotate who goes first
                times[name].append(timed(fn))
        print(f"== per call: rounds={args.rounds} calls/round={args.calls} (interleaved)")
        for index, label in ((0, "wall"), (1, "client CPU")):
            medians = {name: statistics.median(t[index] for t in v) for name, v in times.items()}
            base = medians["raw boto3, default config"]
            print(f"-- {label} time per call (median of rounds)")
            for name, value in medians.items():
                print(f"   {name:<30}: {value * 1e6:8.1f} us  ratio {value / base:6.3f}")
            same = medians["smclient, boto3 transport"] / medians["raw boto3, smclient's config"]
            print(f"   {'boto3 transport / same-config':<30}: {'':8}     ratio {same:6.3f}")
    finally:
        server.kill()
        server.join(10)


def throughput(args: argparse.Namespace) -> None:
    url, server = start_server(args.latency)
    try:
        calls = contenders(url)
        theory = args.threads / args.latency
        print(
            f"== throughput: {args.threads} threads, {args.latency * 1000:.0f} ms server latency, "
            f"{args.seconds:.0f} s each; theoretical {theory:.0f} req/s"
        )
        for name, fn in calls.items():
            if name == "raw boto3, smclient's config":
                continue
            done = [0] * args.threads
            stop = threading.Event()

            def worker(
                i: int,
                fn: Callable[[], Any] = fn,
                stop: threading.Event = stop,
                done: list[int] = done,
            ) -> None:
                while not stop.is_set():
                    fn()
                    done[i] += 1

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
            for t in threads:
                t.start()
            time.sleep(1.0)  # warm up: every thread's connection open
            before, cpu, wall = sum(done), time.process_time(), time.perf_counter()
            time.sleep(args.seconds)
            count, cpu = sum(done) - before, time.process_time() - cpu
            wall = time.perf_counter() - wall
            stop.set()
            for t in threads:
                t.join()
            rate = count / wall
            print(
                f"   {name:<30}: {rate:7.0f} req/s  efficiency {rate / theory:5.2f}  "
                f"client CPU {cpu / count * 1e6:6.0f} us/call"
            )
    finally:
        server.kill()
        server.join(10)


def http_clients(args: argparse.Namespace) -> None:
    """The same signed request over urllib3's pool, http.client's own request path, and the
    fast transport's single write; CPU per request (best of rounds)."""
    import http.client
    from urllib.parse import urlsplit

    import boto3
    import urllib3

    from smclient import Endpoint
    from smclient._fasthttp import FastTransport

    url, server = start_server(0.0)
    try:
        session = boto3.Session(
            aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
        )
        ep = Endpoint("bench", endpoint_url=url, boto3_session=session)
        fast = ep.requester.factory.transport()
        assert isinstance(fast, FastTransport)
        request = ep.requester.build(BODY, content_type="application/json")
        path = request.path
        parts = urlsplit(url)
        pool = urllib3.HTTPConnectionPool(parts.hostname, parts.port, maxsize=1)
        conn = http.client.HTTPConnection(parts.hostname, parts.port)

        def with_urllib3() -> None:
            headers = dict(fast.headers(request, path, time.time()))
            r = pool.urlopen("POST", path, body=BODY, headers=headers, retries=False)
            r.read()

        def with_http_client() -> None:
            conn.request("POST", path, BODY, dict(fast.headers(request, path, time.time())))
            conn.getresponse().read()

        contenders = {
            "urllib3 HTTPConnectionPool": with_urllib3,
            "http.client request()": with_http_client,
            "fast transport (one write)": lambda: fast.send(request),
        }
        best = {name: float("inf") for name in contenders}
        for _ in range(5):
            for name, fn in contenders.items():
                cpu = time.process_time()
                for _ in range(args.calls * 2):
                    fn()
                best[name] = min(best[name], (time.process_time() - cpu) / (args.calls * 2))
        print("== HTTP clients, the same signed request (client CPU per request, best of 5)")
        for name, value in best.items():
            print(f"   {name:<30}: {value * 1e6:8.1f} us")
        conn.close()
        pool.close()
    finally:
        server.kill()
        server.join(10)


def signers() -> None:
    import timeit

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from smclient._fasthttp import Signer

    creds = Credentials("AKIDEXAMPLE", "secret", "token")
    host = "runtime.sagemaker.us-east-1.amazonaws.com"
    path = "/endpoints/ep/invocations"

    def botocore_sigv4() -> None:
        request = AWSRequest(
            "POST", f"https://{host}{path}", data=BODY, headers={"Content-Type": "application/json"}
        )
        SigV4Auth(creds, "sagemaker", "us-east-1").add_auth(request)

    ours = Signer(creds, "us-east-1")

    def smclient_signer() -> None:
        ours.sign(path, host, [("Content-Type", "application/json")], BODY, time.time())

    candidates: dict[str, Callable[[], None]] = {
        "botocore SigV4Auth": botocore_sigv4,
        "smclient Signer": smclient_signer,
    }
    try:
        from awscrt import auth, http
    except ImportError:
        print("   (awscrt not installed: its signer is not measured)")
    else:
        config = auth.AwsSigningConfig(
            algorithm=auth.AwsSigningAlgorithm.V4,
            signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=auth.AwsCredentialsProvider.new_static(
                "AKIDEXAMPLE", "secret", "token"
            ),
            region="us-east-1",
            service="sagemaker",
        )

        def awscrt_signer() -> None:
            headers = http.HttpHeaders([("host", host), ("content-type", "application/json")])
            auth.aws_sign_request(http.HttpRequest("POST", path, headers), config).result()

        candidates["awscrt aws_sign_request"] = awscrt_signer
    print("== signers (CPU per signature, best of 5)")
    for name, fn in candidates.items():
        best = min(timeit.repeat(fn, number=2000, repeat=5)) / 2000
        print(f"   {name:<30}: {best * 1e6:8.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=100, help="calls per client per round")
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05, help="server latency, seconds")
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput run")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    per_call(args)
    if not args.skip_throughput:
        throughput(args)
    http_clients(args)
    signers()


if __name__ == "__main__":
    main()
