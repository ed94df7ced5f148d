"""AWS event-stream framing (``application/vnd.amazon.eventstream``) for the streaming route.

One message is::

    prelude   total length (uint32 BE) | headers length (uint32 BE) | CRC32 of those 8 bytes
    headers   repeated: name length (uint8) | name | type (uint8, 7 = string) |
              value length (uint16 BE) | value
    payload   bytes
    trailer   CRC32 of everything before it (uint32 BE)

botocore's ``EventStreamBuffer`` checks both CRCs and the lengths; events are parsed by
``:event-type`` (``PayloadPart``) and modelled exceptions by ``:exception-type``
(``ModelStreamError``, ``InternalStreamFailure``) with a JSON payload.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence

__all__ = [
    "CONTENT_TYPE",
    "encode_message",
    "internal_stream_failure",
    "model_stream_error",
    "payload_part",
]

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING_TYPE = 7
# botocore refuses larger messages (_MAX_PAYLOAD_LENGTH 24 MiB, headers 128 KiB).
_MAX_PAYLOAD = 24 * 1024 * 1024
_MAX_HEADERS = 128 * 1024


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def _encode_headers(headers: Sequence[tuple[str, str]]) -> bytes:
    parts = []
    for name, value in headers:
        raw_name = name.encode("utf-8")
        raw_value = value.encode("utf-8")
        if not 0 < len(raw_name) < 256 or len(raw_value) > 0xFFFF:
            raise ValueError(f"event-stream header {name!r} is too long")
        parts.append(
            struct.pack(">B", len(raw_name))
            + raw_name
            + struct.pack(">BH", _STRING_TYPE, len(raw_value))
            + raw_value
        )
    return b"".join(parts)


def encode_message(headers: Sequence[tuple[str, str]], payload: bytes) -> bytes:
    """One event-stream message with string-valued ``headers`` and ``payload``."""
    raw_headers = _encode_headers(headers)
    if len(raw_headers) > _MAX_HEADERS or len(payload) > _MAX_PAYLOAD:
        raise ValueError("event-stream message too large")
    total = 12 + len(raw_headers) + len(payload) + 4
    lengths = struct.pack(">II", total, len(raw_headers))
    head = lengths + struct.pack(">I", _crc(lengths)) + raw_headers + payload
    return head + struct.pack(">I", _crc(head))


def payload_part(data: bytes) -> bytes:
    """A ``PayloadPart`` event carrying ``data``; boto3 yields it as
    ``{"PayloadPart": {"Bytes": data}}``."""
    return encode_message(
        [
            (":event-type", "PayloadPart"),
            (":content-type", "application/octet-stream"),
            (":message-type", "event"),
        ],
        data,
    )


def _exception(kind: str, fields: dict[str, str]) -> bytes:
    return encode_message(
        [
            (":exception-type", kind),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        json.dumps(fields).encode(),
    )


def model_stream_error(message: str, error_code: str) -> bytes:
    """A ``ModelStreamError`` event; ``error_code`` is e.g. ``ModelInvocationTimeExceeded``
    or ``StreamBroken`` (boto3 raises ``EventStreamError`` and drops the code)."""
    return _exception("ModelStreamError", {"Message": message, "ErrorCode": error_code})


def internal_stream_failure(message: str) -> bytes:
    """An ``InternalStreamFailure`` event (the service's retryable stream failure)."""
    return _exception("InternalStreamFailure", {"Message": message})
