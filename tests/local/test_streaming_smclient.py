"""smclient's own streaming client end to end against the local endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import smclient
from smclient.local import EndpointSpec, LocalRuntime, StreamError, StreamFaults


def words(body: bytes, content_type: str | None, accept: str | None) -> Iterator[bytes]:
    if body == b"timeout":
        yield b"partial\n"
        raise StreamError("took too long", "ModelInvocationTimeExceeded")
    for word in body.split():
        yield word
        yield b"\n"


class Streamer:
    def predict(self, body: bytes, content_type: str | None, accept: str | None) -> bytes:
        return body

    stream = staticmethod(words)


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    specs = [
        EndpointSpec("words", handler=Streamer()),
        EndpointSpec("cut", handler=Streamer(), stream_faults=StreamFaults(cut_after_events=2)),
    ]
    with LocalRuntime(specs) as rt:
        yield rt


def test_lines_arrive_through_smclient(runtime: LocalRuntime) -> None:
    endpoint = runtime.endpoint("words")
    with endpoint.stream(b"alpha beta gamma") as stream:
        assert list(stream.lines()) == ["alpha", "beta", "gamma"]
    endpoint.close()


def test_model_stream_error_keeps_its_error_code(runtime: LocalRuntime) -> None:
    endpoint = runtime.endpoint("words")
    with pytest.raises(smclient.ModelStreamError) as info, endpoint.stream(b"timeout") as stream:
        list(stream)
    assert info.value.stream_error_code == "ModelInvocationTimeExceeded"
    endpoint.close()


def test_cut_connection_is_a_typed_error(runtime: LocalRuntime) -> None:
    endpoint = runtime.endpoint("cut")
    with pytest.raises(smclient.SMClientError), endpoint.stream(b"a b c d") as stream:
        list(stream)
    endpoint.close()
