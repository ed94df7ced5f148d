"""The official ``aws-sdk-sagemaker-runtime-http2`` client (asyncio, Python >= 3.12, CRT
transport) against the local runtime's bidirectional server, with every signature
verified. Its CRT transport negotiates HTTP/2 only over TLS (ALPN), so the server uses its
generated certificate and the transport is given that certificate as its trust store.

Runs in the ``nox -s official_client`` session (Python 3.12 with the official client
installed); skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

if sys.version_info < (3, 12):
    pytest.skip(
        "the official aws-sdk-sagemaker-runtime-http2 client needs Python >= 3.12: "
        "run `nox -s official_client`",
        allow_module_level=True,
    )
official = pytest.importorskip(
    "aws_sdk_sagemaker_runtime_http2",
    reason="the official client is not installed: run `nox -s official_client`",
)
pytest.importorskip("awscrt", reason="the official client needs its [awscrt] extra")
pytest.importorskip("cryptography", reason="the TLS listener needs cryptography")

from aws_sdk_sagemaker_runtime_http2 import models  # noqa: E402
from aws_sdk_sagemaker_runtime_http2.client import AsyncSageMakerRuntimeHTTP2Client  # noqa: E402
from aws_sdk_sagemaker_runtime_http2.config import AsyncSageMakerRuntimeHTTP2Config  # noqa: E402

from smclient.local.bidi import BidiCall, BidiModelError, BidiServer  # noqa: E402

KEYS = {"AKIDOFFICIAL": "official-secret"}


async def model(call: BidiCall) -> None:
    async for message in call:
        if message.data == b"fail":
            raise BidiModelError("asked to fail", "StreamBroken")
        await call.send(message.data.upper())
        await call.send(f"{message.data_type}:{len(message.data)}")


def _transport(cafile: str) -> Any:
    from awscrt import io as crt_io
    from smithy_http.aio.crt import AWSCRTHTTPClient

    transport = AWSCRTHTTPClient()
    options = crt_io.TlsContextOptions()
    options.override_default_trust_store_from_path(ca_filepath=cafile)
    transport._tls_ctx = crt_io.ClientTlsContext(options)  # trust the local certificate
    return transport


async def _client(server: BidiServer) -> Any:
    assert server.cafile is not None
    config = await AsyncSageMakerRuntimeHTTP2Config.resolve(
        endpoint_uri=server.url,
        region="us-west-2",
        aws_access_key_id="AKIDOFFICIAL",
        aws_secret_access_key="official-secret",
        transport=_transport(server.cafile),
    )
    return AsyncSageMakerRuntimeHTTP2Client(config=config)


def _part(data: bytes, data_type: str = "BINARY") -> Any:
    return models.RequestStreamEventPayloadPart(
        value=models.RequestPayloadPart(bytes_=data, data_type=data_type)
    )


def test_official_client_round_trip_with_verified_signatures() -> None:
    with BidiServer(model, tls=True, credentials=KEYS, variant_name="v1") as server:

        async def main() -> list[tuple[bytes, str | None]]:
            client = await _client(server)
            stream = await client.invoke_endpoint_with_bidirectional_stream(
                models.InvokeEndpointWithBidirectionalStreamInput(endpoint_name="local-bidi")
            )
            await stream.input_stream.send(_part(b"hello"))
            await stream.input_stream.send(_part(b"text", "UTF8"))
            output, receiver = await stream.await_output()
            assert output.invoked_production_variant == "v1"
            got = []
            for _ in range(4):
                event = await asyncio.wait_for(receiver.receive(), 10)
                got.append((event.value.bytes_, event.value.data_type))
            await stream.input_stream.close()
            await stream.close()
            return got

        got = asyncio.run(main())
        assert got == [
            (b"HELLO", "BINARY"),
            (b"BINARY:5", "UTF8"),
            (b"TEXT", "BINARY"),
            (b"UTF8:4", "UTF8"),
        ]
        assert server.signature_failures == []
        assert server.access_keys_seen == ["AKIDOFFICIAL"]
        assert server.events_received == 2


def test_official_client_sees_model_stream_error_with_its_code() -> None:
    with BidiServer(model, tls=True, credentials=KEYS) as server:

        async def main() -> Any:
            client = await _client(server)
            stream = await client.invoke_endpoint_with_bidirectional_stream(
                models.InvokeEndpointWithBidirectionalStreamInput(endpoint_name="local-bidi")
            )
            await stream.input_stream.send(_part(b"fail"))
            _, receiver = await stream.await_output()
            try:
                await asyncio.wait_for(receiver.receive(), 10)
            except Exception as exc:
                return exc
            finally:
                await stream.close()
            return None

        error = asyncio.run(main())
        assert isinstance(error, models.ModelStreamError)
        assert error.error_code == "StreamBroken"
        assert server.signature_failures == []


def test_official_client_against_the_local_runtime() -> None:
    from smclient.local import EndpointSpec, LocalRuntime

    with LocalRuntime([EndpointSpec("local-bidi", bidi_handler=model)]) as runtime:
        assert runtime.bidi_tls_url is not None
        assert runtime.bidi_cafile is not None

        async def main() -> Any:
            config = await AsyncSageMakerRuntimeHTTP2Config.resolve(
                endpoint_uri=runtime.bidi_tls_url,
                region="us-east-1",
                aws_access_key_id="local",
                aws_secret_access_key="local",
                transport=_transport(runtime.bidi_cafile),
            )
            client = AsyncSageMakerRuntimeHTTP2Client(config=config)
            stream = await client.invoke_endpoint_with_bidirectional_stream(
                models.InvokeEndpointWithBidirectionalStreamInput(endpoint_name="local-bidi")
            )
            await stream.input_stream.send(_part(b"runtime"))
            _, receiver = await stream.await_output()
            event = await asyncio.wait_for(receiver.receive(), 10)
            await stream.close()
            return event.value.bytes_

        assert asyncio.run(main()) == b"RUNTIME"
