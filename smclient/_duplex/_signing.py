"""SigV4 for the bidirectional stream: the request's ``Authorization`` header, then a
chain of event signatures (protocol.md §8, the same scheme as Transcribe streaming).

The request is signed with ``X-Amz-Content-SHA256: STREAMING-AWS4-HMAC-SHA256-EVENTS``.
Every event the client sends is wrapped in an outer event-stream message::

    headers  :date (timestamp) , :chunk-signature (32 bytes)
    payload  the encoded inner message (a PayloadPart event)

    string to sign = "AWS4-HMAC-SHA256-PAYLOAD" \\n <YYYYMMDDTHHMMSSZ of :date> \\n
                     <YYYYMMDD>/<region>/sagemaker/aws4_request \\n
                     <previous signature, hex; the first is the Authorization header's> \\n
                     hex(sha256(encoded :date header)) \\n hex(sha256(inner message))
    signature      = HMAC-SHA256(signing key of that date, string to sign)

The end of input is one more signed message whose payload is empty. Credentials are frozen
once per stream (a refreshing provider is asked for fresh ones when each stream opens).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from collections.abc import Callable, Sequence
from urllib.parse import quote

import attrs

from ._eventstream import Timestamp, encode_headers, encode_message

__all__ = [
    "SIGNING_NAME",
    "STREAMING_PAYLOAD",
    "Credentials",
    "EventSigner",
    "sign_request",
    "signing_key",
]

SIGNING_NAME = "sagemaker"
STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-EVENTS"
_ALGORITHM = "AWS4-HMAC-SHA256"
_FORMAT = "%Y%m%dT%H%M%SZ"


@attrs.frozen(repr=False)
class Credentials:
    """Frozen AWS credentials (never shown in reprs or logs)."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(access_key={self.access_key[:4]}...)"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, region: str, service: str = SIGNING_NAME) -> bytes:
    """The SigV4 signing key for ``date`` (``YYYYMMDD``)."""
    key = _hmac(f"AWS4{secret_key}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def _utc(now: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(now, tz=datetime.timezone.utc)


def sign_request(
    *,
    method: str,
    authority: str,
    path: str,
    headers: Sequence[tuple[str, str]],
    credentials: Credentials,
    region: str,
    now: float,
) -> tuple[list[tuple[str, str]], str]:
    """Sign a request whose body is a signed event stream.

    ``headers`` are the request's own headers (lower-case names, no pseudo-headers);
    ``authority`` is the ``host[:port]`` the request goes to (signed as ``host``).
    Returns the headers to send (with ``x-amz-date``, ``x-amz-content-sha256``,
    ``x-amz-security-token`` and ``authorization`` added) and the signature (hex) that
    seeds the event chain. ``now`` is seconds since the epoch.
    """
    stamp = _utc(int(now)).strftime(_FORMAT)
    signed: dict[str, str] = {name.lower(): value for name, value in headers}
    signed["host"] = authority
    signed["x-amz-date"] = stamp
    signed["x-amz-content-sha256"] = STREAMING_PAYLOAD
    if credentials.token:
        signed["x-amz-security-token"] = credentials.token
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            quote(path, safe="/-_.~"),
            "",  # no query string
            "".join(f"{n}:{' '.join(signed[n].split())}\n" for n in names),
            ";".join(names),
            STREAMING_PAYLOAD,
        ]
    )
    scope = f"{stamp[:8]}/{region}/{SIGNING_NAME}/aws4_request"
    to_sign = "\n".join([_ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = signing_key(credentials.secret_key, stamp[:8], region)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out = [(n, v) for n, v in signed.items() if n != "host"]
    out.append(
        (
            "authorization",
            f"{_ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}",
        )
    )
    return out, signature


class EventSigner:
    """Signs the events of one stream in order: each signature chains on the previous one.

    ``seed`` is the request signature (hex); ``clock`` gives seconds since the epoch
    (whole seconds are used, so ``:date`` and the string to sign always agree).
    Not thread-safe: the caller signs and writes under one lock so that wire order is
    signing order.
    """

    def __init__(
        self,
        *,
        credentials: Credentials,
        region: str,
        seed: str,
        clock: Callable[[], float],
    ) -> None:
        self._credentials = credentials
        self._region = region
        self._previous = seed
        self._clock = clock
        self._keys: dict[str, bytes] = {}

    @property
    def previous(self) -> str:
        """The last signature sent (hex)."""
        return self._previous

    def sign(self, inner: bytes) -> bytes:
        """The outer, signed message carrying ``inner`` (``b""`` ends the input)."""
        seconds = int(self._clock())
        stamp = _utc(seconds).strftime(_FORMAT)
        date_header = (":date", Timestamp(seconds * 1000))
        scope = f"{stamp[:8]}/{self._region}/{SIGNING_NAME}/aws4_request"
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                stamp,
                scope,
                self._previous,
                hashlib.sha256(encode_headers([date_header])).hexdigest(),
                hashlib.sha256(inner).hexdigest(),
            ]
        )
        key = self._keys.get(stamp[:8])
        if key is None:  # a stream that crosses midnight UTC signs with the new day's key
            key = signing_key(self._credentials.secret_key, stamp[:8], self._region)
            self._keys = {stamp[:8]: key}
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).digest()
        self._previous = signature.hex()
        return encode_message([date_header, (":chunk-signature", signature)], inner)
