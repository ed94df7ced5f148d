"""What smclient relies on in its dependencies, checked against the installed versions so a
release that changes it fails here, loudly, rather than in a user's stream.

- botocore's ``EventStream`` keeps the raw HTTP body in the private ``_raw_stream``
  (a urllib3 response with ``stream()``): smclient reads event-stream frames from it
  (``smclient._transport.raw_http_body``, the only reader) because botocore's parsed events
  drop ``ModelStreamError.ErrorCode`` and let raw urllib3 errors escape.
- boto3-stubs are for type checkers only: never imported at run time.
"""

from __future__ import annotations

import inspect
import subprocess
import sys

import botocore
import botocore.eventstream
import pytest

from smclient import SMClientError
from smclient._transport import raw_http_body
from smclient.testing import Reply, ScriptedRuntime


def _frame(payload: bytes) -> bytes:
    import binascii
    import struct

    headers = b""
    for name, value in ((":message-type", "event"), (":event-type", "PayloadPart")):
        headers += bytes([len(name)]) + name.encode() + b"\x07"
        headers += struct.pack(">H", len(value)) + value.encode()
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    head = prelude + struct.pack(">I", binascii.crc32(prelude)) + headers + payload
    return head + struct.pack(">I", binascii.crc32(head))


def test_botocore_event_stream_still_keeps_its_raw_body(runtime: ScriptedRuntime) -> None:
    runtime.queue(Reply.ok(_frame(b"hello"), content_type="application/vnd.amazon.eventstream"))
    client = runtime.endpoint().client()  # a plain boto3 client, as botocore builds it
    response = client.invoke_endpoint_with_response_stream(EndpointName="scripted", Body=b"x")
    body = response["Body"]
    assert isinstance(body, botocore.eventstream.EventStream), (
        f"botocore {botocore.__version__}: the streaming Body is no longer an EventStream"
    )
    raw = raw_http_body(body)
    assert raw is body._raw_stream
    buffer = botocore.eventstream.EventStreamBuffer()
    for data in raw.stream():
        buffer.add_data(data)
    messages = list(buffer)
    assert [m.payload for m in messages] == [b"hello"]
    assert messages[0].headers[":event-type"] == "PayloadPart"


def test_event_stream_constructor_still_takes_the_raw_stream() -> None:
    params = inspect.signature(botocore.eventstream.EventStream.__init__).parameters
    assert "raw_stream" in params, (
        f"botocore {botocore.__version__} changed EventStream(raw_stream=...): "
        "smclient._streaming.raw_http_body must follow"
    )


def test_a_botocore_without_the_raw_body_is_a_clear_error() -> None:
    class Changed:
        closed = False

        def close(self) -> None:
            self.closed = True

    body = Changed()
    with pytest.raises(SMClientError, match=r"_raw_stream.*report") as info:
        raw_http_body(body)
    assert botocore.__version__ in str(info.value)
    assert body.closed


def test_boto3_stubs_are_never_imported_at_run_time() -> None:
    code = (
        "import sys, smclient\n"
        "ep = smclient.Endpoint('e', region='us-east-1')\n"
        "ep.client('s3'); ep.client()\n"
        "print(sorted(m for m in sys.modules if m.startswith('mypy_boto3')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"
