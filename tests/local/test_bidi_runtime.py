"""Bidirectional streams served by the LocalRuntime on its own port: connections that open
with the HTTP/2 preface go to the bidirectional server, HTTP/1.1 ones to the runtime."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("h2", reason="bidirectional streaming needs the 'duplex' extra")
pytest.importorskip("wsproto", reason="the container front needs the 'duplex' extra")

from smclient import DuplexMessage, ValidationError
from smclient.local import EndpointSpec, LocalRuntime
from smclient.local.bidi import BidiCall

from .bidi_fakes import FakeContainer


async def shout(call: BidiCall) -> None:
    async for message in call:
        await call.send(message.text.upper())


def predict(body: bytes, content_type: str | None, accept: str | None) -> bytes:
    return body[::-1]


def test_a_bidi_only_endpoint_on_the_runtimes_own_port() -> None:
    with LocalRuntime([EndpointSpec("talk", bidi_handler=shout)]) as runtime:
        endpoint = runtime.endpoint("talk")
        with endpoint.duplex() as stream:
            stream.send("hello")
            assert stream.receive() == DuplexMessage(b"HELLO", "UTF8")
        with pytest.raises(ValidationError, match="only bidirectional streams"):
            endpoint.invoke(b"x")
        assert runtime.bidi_server is not None


def test_one_endpoint_serves_both_real_time_and_bidirectional_calls() -> None:
    spec = EndpointSpec("both", handler=predict, bidi_handler=shout)
    with LocalRuntime([spec, EndpointSpec("plain", handler=predict)]) as runtime:
        assert runtime.endpoint("both").invoke(b"abc").body == b"cba"
        with runtime.endpoint("both").duplex() as stream:
            stream.send("x")
            assert stream.receive() == DuplexMessage(b"X", "UTF8")
        assert runtime.endpoint("plain").invoke(b"abc").body == b"cba"
        with (
            pytest.raises(ValidationError, match="plain of account"),
            runtime.endpoint("plain").duplex(),
        ):
            pass


def test_a_container_endpoint_fronted_over_the_websocket_contract() -> None:
    from .bidi_fakes import echo

    container = FakeContainer(echo)
    try:
        spec = EndpointSpec("box", container_url=container.url, container_bidi=True)
        with LocalRuntime([spec]) as runtime, runtime.endpoint("box").duplex() as stream:
            stream.send("hi")
            stream.send(b"\x00")
            assert stream.receive() == DuplexMessage(b"HI", "UTF8")
            assert stream.receive() == DuplexMessage(b"\x00\x00", "BINARY")
        assert container.targets == ["/invocations-bidirectional-stream"]
    finally:
        container.stop()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"bidi_handler": shout, "container_bidi": True, "container_url": "http://x:1"},
            "not both",
        ),
        ({"handler": predict, "container_bidi": True}, "needs container_url"),
    ],
)
def test_spec_checks(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EndpointSpec("e", **options)


def test_serve_from_the_command_line_with_a_bidi_handler() -> None:
    import io
    import re
    import threading

    from smclient import ClientConfig, Endpoint
    from smclient.local import run_cli

    out = io.StringIO()
    stop = threading.Event()
    codes: list[int] = []
    argv = [
        "serve",
        "--bidi-handler",
        f"talk={__name__}:shout",
        "--handler",
        f"both={__name__}:predict",
        "--bidi-handler",
        f"both={__name__}:shout",
    ]
    thread = threading.Thread(target=lambda: codes.append(run_cli(argv, out=out, stop=stop)))
    thread.start()
    try:
        for _ in range(500):
            if "Press Ctrl-C" in out.getvalue():
                break
            stop.wait(0.01)
        text = out.getvalue()
        assert "endpoint talk (bidirectional only" in text
        assert "endpoint both (single-model, bidirectional" in text
        match = re.search(r"http://127\.0\.0\.1:\d+", text)
        assert match is not None
        for name in ("talk", "both"):
            endpoint = Endpoint(
                name, endpoint_url=match.group(0), config=ClientConfig(sign_requests=False)
            )
            with endpoint.duplex() as stream:
                stream.send("hey")
                assert stream.receive() == DuplexMessage(b"HEY", "UTF8")
    finally:
        stop.set()
        thread.join(20)
    assert codes == [0]


def test_serve_refuses_bidi_container_without_a_container() -> None:
    import io

    from smclient.local import run_cli

    assert (
        run_cli(
            ["serve", "--handler", f"a={__name__}:predict", "--bidi-container", "a"],
            out=io.StringIO(),
        )
        == 2
    )


def test_the_runtime_also_serves_bidirectional_streams_over_tls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("cryptography")
    with LocalRuntime([EndpointSpec("talk", bidi_handler=shout)]) as runtime:
        assert runtime.bidi_tls_url is not None
        assert runtime.bidi_tls_url.startswith("https://127.0.0.1:")
        assert runtime.bidi_cafile is not None
        monkeypatch.setenv("AWS_CA_BUNDLE", runtime.bidi_cafile)
        from smclient import ClientConfig, Endpoint

        endpoint = Endpoint(
            "talk", endpoint_url=runtime.bidi_tls_url, config=ClientConfig(sign_requests=False)
        )
        with endpoint.duplex() as stream:
            stream.send("secure")
            assert stream.receive() == DuplexMessage(b"SECURE", "UTF8")
