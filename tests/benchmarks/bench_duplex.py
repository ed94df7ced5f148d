"""Bidirectional streaming through the local runtime: messages per second and added latency
per message, smclient (blocking and asyncio) and — when installed (Python >= 3.12) — the
official aws-sdk-sagemaker-runtime-http2 client, side by side in one run.

One TLS server (the local runtime's BidiServer with its generated certificate, an echo
model, signatures not verified so the server's work stays small), in its own process so
that it does not compete with the clients for the GIL, serves every contender; rounds
rotate the order. Two figures per contender, medians of the rounds:

- ping-pong: send one 64-byte message, wait for its echo; the time per round trip is the
  latency a conversational caller sees;
- pipelined: send N 1 KiB messages while reading the echoes; messages per second;
- client CPU time per message (process time over both phases), the steadier figure when
  the machine is busy.

Usage: python tests/benchmarks/bench_duplex.py [--rounds 5] [--messages 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3

from smclient import ClientConfig, Endpoint
from smclient.local.bidi import BidiCall, BidiServer


async def echo(call: BidiCall) -> None:
    async for message in call:
        await call.send(message.data)


def _endpoint(server: BidiServer) -> Endpoint:
    session = boto3.Session(
        aws_access_key_id="AKIDBENCH", aws_secret_access_key="bench", region_name="us-west-2"
    )
    return Endpoint("bench", endpoint_url=server.url, boto3_session=session, config=ClientConfig())


def smclient_sync(server: BidiServer, messages: int) -> tuple[float, float]:
    endpoint = _endpoint(server)
    small, big = b"x" * 64, b"y" * 1024
    with endpoint.duplex() as stream:
        start = time.perf_counter()
        for _ in range(messages):
            stream.send(small)
            stream.receive()
        ping = (time.perf_counter() - start) / messages
        start = time.perf_counter()
        for _ in range(messages):
            stream.send(big)
        for _ in range(messages):
            stream.receive()
        rate = messages / (time.perf_counter() - start)
    return ping, rate


def smclient_async(server: BidiServer, messages: int) -> tuple[float, float]:
    endpoint = _endpoint(server)
    small, big = b"x" * 64, b"y" * 1024

    async def main() -> tuple[float, float]:
        async with endpoint.duplex_async() as stream:
            start = time.perf_counter()
            for _ in range(messages):
                await stream.send(small)
                await stream.receive()
            ping = (time.perf_counter() - start) / messages

            async def reader() -> None:
                for _ in range(messages):
                    await stream.receive()

            start = time.perf_counter()
            task = asyncio.create_task(reader())
            for _ in range(messages):
                await stream.send(big)
            await task
            return ping, messages / (time.perf_counter() - start)

    return asyncio.run(main())


def official(server: BidiServer, messages: int) -> tuple[float, float]:
    from aws_sdk_sagemaker_runtime_http2 import models
    from aws_sdk_sagemaker_runtime_http2.client import AsyncSageMakerRuntimeHTTP2Client
    from aws_sdk_sagemaker_runtime_http2.config import AsyncSageMakerRuntimeHTTP2Config
    from awscrt import io as crt_io
    from smithy_http.aio.crt import AWSCRTHTTPClient

    def part(data: bytes) -> Any:
        return models.RequestStreamEventPayloadPart(value=models.RequestPayloadPart(bytes_=data))

    async def main() -> tuple[float, float]:
        assert server.cafile is not None
        transport = AWSCRTHTTPClient()
        options = crt_io.TlsContextOptions()
        options.override_default_trust_store_from_path(ca_filepath=server.cafile)
        transport._tls_ctx = crt_io.ClientTlsContext(options)
        config = await AsyncSageMakerRuntimeHTTP2Config.resolve(
            endpoint_uri=server.url,
            region="us-west-2",
            aws_access_key_id="AKIDBENCH",
            aws_secret_access_key="bench",
            transport=transport,
        )
        client = AsyncSageMakerRuntimeHTTP2Client(config=config)
        stream = await client.invoke_endpoint_with_bidirectional_stream(
            models.InvokeEndpointWithBidirectionalStreamInput(endpoint_name="bench")
        )
        await stream.input_stream.send(part(b"warm"))
        _, receiver = await stream.await_output()
        await receiver.receive()
        small, big = b"x" * 64, b"y" * 1024
        start = time.perf_counter()
        for _ in range(messages):
            await stream.input_stream.send(part(small))
            await receiver.receive()
        ping = (time.perf_counter() - start) / messages

        async def reader() -> None:
            for _ in range(messages):
                await receiver.receive()

        start = time.perf_counter()
        task = asyncio.create_task(reader())
        for _ in range(messages):
            await stream.input_stream.send(part(big))
        await task
        rate = messages / (time.perf_counter() - start)
        await stream.input_stream.close()
        await stream.close()
        return ping, rate

    return asyncio.run(main())


class _Remote:
    """The server process's address, shaped like a BidiServer for the contenders."""

    def __init__(self, url: str, cafile: str) -> None:
        self.url = url
        self.cafile = cafile


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        with BidiServer(echo, tls=True) as served:
            print(served.url, served.cafile, flush=True)
            threading.Event().wait()  # until the parent terminates this process
        return
    contenders: dict[str, Callable[[BidiServer, int], tuple[float, float]]] = {
        "smclient duplex (blocking)": smclient_sync,
        "smclient duplex_async": smclient_async,
    }
    try:
        import aws_sdk_sagemaker_runtime_http2  # noqa: F401

        contenders["official client (CRT)"] = official
    except ImportError:
        print("official client not installed (needs Python >= 3.12): nox -s bench_official")
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in contenders}
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        url, cafile = child.stdout.readline().split()
        server = _Remote(url, cafile)
        os.environ["AWS_CA_BUNDLE"] = cafile
        names = list(contenders)
        for round_number in range(args.rounds):
            order = names[round_number % len(names) :] + names[: round_number % len(names)]
            for name in order:
                cpu = time.process_time()
                ping, rate = contenders[name](server, args.messages)  # type: ignore[arg-type]
                # Client CPU per message (both phases: 2 x messages sent and received);
                # steadier than wall time on a loaded machine (the server is elsewhere).
                per = (time.process_time() - cpu) / (2 * args.messages)
                results[name].append((ping, rate, per))
    finally:
        child.terminate()
        child.wait(10)
    print(
        f"python {sys.version.split()[0]}, rounds={args.rounds}, messages/round={args.messages},"
        " TLS loopback, echo model (medians of rounds)"
    )
    base = statistics.median(r[2] for r in results[names[0]])
    for name in names:
        ping = statistics.median(r[0] for r in results[name])
        rate = statistics.median(r[1] for r in results[name])
        cpu = statistics.median(r[2] for r in results[name])
        print(
            f"  {name:28s}: round trip {ping * 1e6:7.0f} us   pipelined {rate:6.0f} msg/s   "
            f"client CPU {cpu * 1e6:5.0f} us/msg (x{cpu / base:4.2f})"
        )


if __name__ == "__main__":
    main()
