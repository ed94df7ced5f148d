"""Checks the SigV4 signatures of a bidirectional stream: the request's ``Authorization``
header and the chain of event signatures (protocol.md §8).

Written apart from the client's signer (``smclient._duplex._signing``) on purpose: the
tests check one against the other, so they must not share code.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote

__all__ = ["EventChain", "SignatureError", "verify_request"]

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?"
    r"Signature=(?P<sig>[0-9a-f]{64})"
)


class SignatureError(Exception):
    """A signature did not verify; the message says which and why."""


def _key(secret: str, date: str, region: str, service: str) -> bytes:
    k = b"AWS4" + secret.encode()
    for part in (date, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def verify_request(
    method: str,
    path: str,
    headers: Mapping[str, str],
    secrets: Mapping[str, str],
    *,
    service: str = "sagemaker",
) -> tuple[str, bytes, str, str]:
    """Verify the request signature. ``headers`` have lower-case names and include
    ``host`` (the ``:authority``). Returns ``(seed signature hex, signing key, region,
    date)`` for the event chain."""
    match = _AUTH.fullmatch(headers.get("authorization", ""))
    if match is None:
        raise SignatureError("missing or malformed Authorization header")
    if match["service"] != service:
        raise SignatureError(f"signed for service {match['service']!r}, not {service!r}")
    secret = secrets.get(match["key"])
    if secret is None:
        raise SignatureError(f"unknown access key {match['key']!r}")
    if headers.get("x-amz-content-sha256") != "STREAMING-AWS4-HMAC-SHA256-EVENTS":
        raise SignatureError("x-amz-content-sha256 is not STREAMING-AWS4-HMAC-SHA256-EVENTS")
    stamp = headers.get("x-amz-date", "")
    if stamp[:8] != match["date"]:
        raise SignatureError("x-amz-date does not match the credential scope's date")
    names = match["signed"].split(";")
    for required in ("host", "x-amz-date", "x-amz-content-sha256"):
        if required not in names:
            raise SignatureError(f"{required} is not signed")
    lines = []
    for name in names:
        if name not in headers:
            raise SignatureError(f"signed header {name!r} was not sent")
        lines.append(f"{name}:{' '.join(headers[name].split())}\n")
    path, _, query = path.partition("?")
    pairs = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
        for k, v in parse_qsl(query, keep_blank_values=True)
    )
    canonical = "\n".join(
        [
            method,
            quote(path, safe="/-_.~"),
            "&".join(f"{k}={v}" for k, v in pairs),
            "".join(lines),
            ";".join(names),
            "STREAMING-AWS4-HMAC-SHA256-EVENTS",
        ]
    )
    scope = f"{match['date']}/{match['region']}/{service}/aws4_request"
    to_sign = (
        f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    )
    key = _key(secret, match["date"], match["region"], service)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["sig"]):
        raise SignatureError("the request signature does not match")
    return match["sig"], key, match["region"], match["date"]


class EventChain:
    """Verifies each signed event in order against the previous signature."""

    def __init__(
        self,
        seed: str,
        *,
        secret: str,
        region: str,
        service: str = "sagemaker",
    ) -> None:
        self._previous = seed
        self._secret = secret
        self._region = region
        self._service = service

    def verify(self, headers: Mapping[str, object], payload: bytes) -> None:
        """``headers`` as botocore decodes them (``:date`` an int of milliseconds,
        ``:chunk-signature`` bytes)."""
        millis = headers.get(":date")
        signature = headers.get(":chunk-signature")
        if not isinstance(millis, int) or not isinstance(signature, bytes):
            raise SignatureError("event without :date and :chunk-signature headers")
        import datetime

        when = datetime.datetime.fromtimestamp(millis / 1000, tz=datetime.timezone.utc)
        stamp = when.strftime("%Y%m%dT%H%M%SZ")
        date_header = bytes([5]) + b":date" + bytes([8]) + struct.pack(">q", millis)
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                stamp,
                f"{stamp[:8]}/{self._region}/{self._service}/aws4_request",
                self._previous,
                hashlib.sha256(date_header).hexdigest(),
                hashlib.sha256(payload).hexdigest(),
            ]
        )
        key = _key(self._secret, stamp[:8], self._region, self._service)
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise SignatureError("an event signature does not match the chain")
        self._previous = signature.hex()
