"""The sans-I/O core of bidirectional streaming: event-stream framing, SigV4 request and
event signatures (checked by the local runtime's independent verifier and by botocore's
own SigV4 code), request building and its checks, splitting and reassembly."""

from __future__ import annotations

import datetime
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("h2", reason="bidirectional streaming needs the 'duplex' extra (h2)")

import contextlib

from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from smclient import (
    ClientConfig,
    ConfigurationError,
    Endpoint,
    InternalFailureError,
    InvalidInputError,
    ModelError,
    ServiceError,
    ServiceUnavailableError,
    ThrottlingError,
    ValidationError,
)
from smclient._duplex._eventstream import (
    Decoder,
    Timestamp,
    decode_one,
    encode_message,
)
from smclient._duplex._messages import (
    MAX_PART_SIZE,
    DuplexMessage,
    Reassembler,
    encode_part,
    parse_part,
    split,
)
from smclient._duplex._request import build_headers, resolve_target
from smclient._duplex._signing import (
    Credentials,
    EventSigner,
    sign_request,
    signing_key,
)
from smclient._errors import ErrorContext, translate_bidi_response
from smclient.local.bidi import EventChain, SignatureError, verify_request

CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token-1")
NOW = 1_764_480_000.0  # 2025-11-30T05:20:00Z


def _decode_all(data: bytes) -> list[tuple[dict[str, object], bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return [(dict(m.headers), bytes(m.payload)) for m in buffer]


# -- framing -------------------------------------------------------------------------


def test_encoded_messages_decode_with_botocore_including_typed_headers() -> None:
    raw = encode_message(
        [("s", "text"), ("b", b"\x00\x01"), (":date", Timestamp(1_700_000_000_123))], b"payload"
    )
    [(headers, payload)] = _decode_all(raw)
    assert headers == {"s": "text", "b": b"\x00\x01", ":date": 1_700_000_000_123}
    assert payload == b"payload"


def test_decoder_is_incremental_across_arbitrary_cuts() -> None:
    stream = b"".join(encode_message([("n", str(i))], bytes([i]) * i) for i in range(20))
    decoder = Decoder()
    seen = []
    for start in range(0, len(stream), 7):
        seen += decoder.feed(stream[start : start + 7])
    assert [e.headers["n"] for e in seen] == [str(i) for i in range(20)]
    assert [len(e.payload) for e in seen] == list(range(20))


def test_decoder_rejects_a_corrupted_message() -> None:
    raw = bytearray(encode_message([("a", "b")], b"payload"))
    raw[-6] ^= 0xFF  # a payload byte: the message CRC no longer matches
    with pytest.raises(ChecksumMismatch):
        Decoder().feed(bytes(raw))


def test_header_value_too_long_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than 65535"):
        encode_message([("a", "x" * 70_000)], b"")


def test_payload_part_event_carries_the_modelled_headers() -> None:
    [(headers, payload)] = _decode_all(encode_part(b"abc", "UTF8", False))
    assert headers == {
        ":message-type": "event",
        ":event-type": "PayloadPart",
        ":content-type": "application/octet-stream",
        "DataType": "UTF8",
        "CompletionState": "PARTIAL",
    }
    assert payload == b"abc"


def test_parse_part_defaults_to_binary_complete_when_headers_are_absent() -> None:
    event = decode_one(encode_message([(":event-type", "PayloadPart")], b"x"))
    assert parse_part(event) == DuplexMessage(b"x", "BINARY", True)


# -- signatures ----------------------------------------------------------------------


def _signed_request(now: float = NOW) -> tuple[list[tuple[str, str]], str]:
    return sign_request(
        method="POST",
        authority="runtime.sagemaker.us-west-2.amazonaws.com:8443",
        path="/endpoints/my-endpoint/invocations-bidirectional-stream",
        headers=build_headers(target_variant="v1"),
        credentials=CREDS,
        region="us-west-2",
        now=now,
    )


def test_request_signature_verifies_with_the_independent_checker() -> None:
    headers, seed = _signed_request()
    as_dict = dict(headers)
    as_dict["host"] = "runtime.sagemaker.us-west-2.amazonaws.com:8443"
    found_seed, _key, region, date = verify_request(
        "POST",
        "/endpoints/my-endpoint/invocations-bidirectional-stream",
        as_dict,
        {CREDS.access_key: CREDS.secret_key},
    )
    assert (found_seed, region, date) == (seed, "us-west-2", "20251130")
    assert as_dict["x-amz-content-sha256"] == "STREAMING-AWS4-HMAC-SHA256-EVENTS"
    assert as_dict["x-amz-security-token"] == "token-1"
    assert "/us-west-2/sagemaker/aws4_request" in as_dict["authorization"]


def test_request_signature_matches_botocore_sigv4() -> None:
    """botocore's SigV4Auth computes the same signature for the same request and time."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    headers, seed = _signed_request()
    sent = dict(headers)
    request = AWSRequest(
        method="POST",
        url="https://runtime.sagemaker.us-west-2.amazonaws.com:8443"
        "/endpoints/my-endpoint/invocations-bidirectional-stream",
        headers={k: v for k, v in sent.items() if k != "authorization"},
        data=b"",
    )
    request.context["timestamp"] = sent["x-amz-date"]
    auth = SigV4Auth(
        BotoCredentials(CREDS.access_key, CREDS.secret_key, CREDS.token), "sagemaker", "us-west-2"
    )
    canonical = auth.canonical_request(request)
    assert canonical.endswith("STREAMING-AWS4-HMAC-SHA256-EVENTS")
    assert auth.signature(auth.string_to_sign(request, canonical), request) == seed


def test_tampered_request_fails_verification() -> None:
    headers, _ = _signed_request()
    as_dict = dict(headers)
    as_dict["host"] = "runtime.sagemaker.us-west-2.amazonaws.com:8443"
    as_dict["x-amzn-sagemaker-target-variant"] = "v2"
    with pytest.raises(SignatureError, match="does not match"):
        verify_request(
            "POST",
            "/endpoints/my-endpoint/invocations-bidirectional-stream",
            as_dict,
            {CREDS.access_key: CREDS.secret_key},
        )
    with pytest.raises(SignatureError, match="unknown access key"):
        verify_request("POST", "/x", as_dict, {"OTHER": "k"})


def _chain(seed: str) -> EventChain:
    return EventChain(seed, secret=CREDS.secret_key, region="us-west-2")


def test_event_chain_verifies_with_the_independent_checker_including_the_end_frame() -> None:
    _, seed = _signed_request()
    clock = iter([NOW, NOW + 0.4, NOW + 1.7, NOW + 2.0]).__next__
    signer = EventSigner(credentials=CREDS, region="us-west-2", seed=seed, clock=clock)
    inners = [
        encode_part(b"one", "BINARY", True),
        encode_part(b"zwei", "UTF8", True),
        encode_part(b"", "BINARY", True),
        b"",
    ]
    checker = _chain(seed)
    for inner in inners:
        [(headers, payload)] = _decode_all(signer.sign(inner))
        assert list(headers) == [":date", ":chunk-signature"]
        assert headers[":date"] % 1000 == 0  # whole seconds: :date and the string agree
        assert payload == inner
        checker.verify(headers, payload)
    assert signer.previous == checker._previous


def test_event_signature_matches_the_documented_formula() -> None:
    """Recompute the first event signature by hand from protocol.md §8."""
    signer = EventSigner(credentials=CREDS, region="eu-west-1", seed="ab" * 32, clock=lambda: NOW)
    inner = encode_part(b"x", "BINARY", True)
    [(headers, _)] = _decode_all(signer.sign(inner))
    date_header = b"\x05:date\x08" + int(NOW * 1000).to_bytes(8, "big")
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256-PAYLOAD",
            "20251130T052000Z",
            "20251130/eu-west-1/sagemaker/aws4_request",
            "ab" * 32,
            hashlib.sha256(date_header).hexdigest(),
            hashlib.sha256(inner).hexdigest(),
        ]
    )
    key = signing_key(CREDS.secret_key, "20251130", "eu-west-1")
    assert headers[":chunk-signature"] == hmac.new(key, to_sign.encode(), hashlib.sha256).digest()


def test_chain_breaks_when_events_are_reordered_or_altered() -> None:
    signer = EventSigner(credentials=CREDS, region="us-west-2", seed="00" * 32, clock=lambda: NOW)
    first = _decode_all(signer.sign(encode_part(b"1", "BINARY", True)))[0]
    second = _decode_all(signer.sign(encode_part(b"2", "BINARY", True)))[0]
    with pytest.raises(SignatureError):
        _chain("00" * 32).verify(*second)
    with pytest.raises(SignatureError):
        _chain("00" * 32).verify(first[0], first[1] + b"!")


def test_a_stream_crossing_midnight_signs_with_the_new_days_key() -> None:
    midnight = datetime.datetime(2025, 12, 1, tzinfo=datetime.timezone.utc).timestamp()
    times = iter([midnight - 1, midnight + 1]).__next__
    signer = EventSigner(credentials=CREDS, region="us-west-2", seed="11" * 32, clock=times)
    checker = _chain("11" * 32)
    for payload in (b"before", b"after"):
        checker.verify(*_decode_all(signer.sign(encode_part(payload, "BINARY", True)))[0])


def test_credentials_repr_hides_the_secret() -> None:
    assert CREDS.secret_key not in repr(CREDS)
    assert "token-1" not in repr(CREDS)


# -- request building ----------------------------------------------------------------


def test_default_url_has_port_8443_and_the_partition_suffix() -> None:
    target = resolve_target("my-ep", region="us-west-2", endpoint_url=None)
    assert target.url == (
        "https://runtime.sagemaker.us-west-2.amazonaws.com:8443"
        "/endpoints/my-ep/invocations-bidirectional-stream"
    )
    assert resolve_target("e", region="cn-north-1", endpoint_url=None).host == (
        "runtime.sagemaker.cn-north-1.amazonaws.com.cn"
    )


def test_fips_host() -> None:
    target = resolve_target("e", region="us-gov-west-1", endpoint_url=None, fips=True)
    assert target.authority == "runtime-fips.sagemaker.us-gov-west-1.amazonaws.com:8443"


def test_endpoint_url_is_honoured_with_8443_as_the_https_default() -> None:
    assert (
        resolve_target("e", region=None, endpoint_url="https://vpce.example").authority
        == "vpce.example:8443"
    )
    plain = resolve_target("e", region=None, endpoint_url="http://127.0.0.1:9000/prefix/")
    assert (plain.scheme, plain.port, plain.path) == (
        "http",
        9000,
        "/prefix/endpoints/e/invocations-bidirectional-stream",
    )
    with pytest.raises(InvalidInputError, match="fips"):
        resolve_target("e", region=None, endpoint_url="https://x", fips=True)
    with pytest.raises(InvalidInputError, match="endpoint_url"):
        resolve_target("e", region=None, endpoint_url="ftp://x")


def test_no_region_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="region"):
        resolve_target("e", region=None, endpoint_url=None)


def test_headers_are_sent_only_when_set() -> None:
    assert build_headers() == [("content-type", "application/vnd.amazon.eventstream")]
    assert dict(
        build_headers(
            target_variant="v-1", model_invocation_path="v1/chat", model_query_string="a=1&b=x%20y"
        )
    ) == {
        "content-type": "application/vnd.amazon.eventstream",
        "x-amzn-sagemaker-target-variant": "v-1",
        "x-amzn-sagemaker-model-invocation-path": "v1/chat",
        "x-amzn-sagemaker-model-query-string": "a=1&b=x%20y",
    }


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("target_variant", "-bad", "not valid"),
        ("target_variant", "v" * 64, "out of range"),
        ("model_invocation_path", "/v1/chat", "starts with '/'"),
        ("model_invocation_path", "v1//chat", "not valid"),
        ("model_invocation_path", "a" * 101, "out of range"),
        ("model_query_string", "a=1&b", "not valid"),
        ("model_query_string", "a=x y", "not valid"),
        ("model_query_string", "a=" + "b" * 2047, "out of range"),
    ],
)
def test_bad_values_are_refused_before_anything_is_sent(
    field: str, value: str, fragment: str
) -> None:
    # endpoint_url points nowhere: the check must come first, with no connection attempt.
    endpoint = Endpoint(
        "e", endpoint_url="http://127.0.0.1:9", config=ClientConfig(sign_requests=False)
    )
    with pytest.raises(InvalidInputError, match=fragment) as info:
        endpoint.duplex(**{field: value})
    assert info.value.field == field


def test_no_credentials_is_a_configuration_error_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    session = boto3.Session(region_name="us-west-2")
    endpoint = Endpoint("e", endpoint_url="http://127.0.0.1:9", boto3_session=session)
    with pytest.raises(ConfigurationError, match="credentials"):
        endpoint.duplex()


# -- splitting and reassembly --------------------------------------------------------


def test_split_uses_partial_parts_of_at_most_part_size() -> None:
    parts = list(split(b"x" * 10, "BINARY", 4))
    assert parts == [(b"xxxx", False), (b"xxxx", False), (b"xx", True)]
    assert list(split(b"", "BINARY", 4)) == [(b"", True)]
    with pytest.raises(InvalidInputError, match="part_size"):
        list(split(b"x", "BINARY", MAX_PART_SIZE + 1))


@given(st.text(min_size=0, max_size=60), st.integers(min_value=4, max_value=16))
def test_text_is_never_cut_inside_a_character(text: str, size: int) -> None:
    parts = list(split(text.encode(), "UTF8", size))
    for chunk, _ in parts:
        assert len(chunk) <= size
        chunk.decode("utf-8")  # each part is valid UTF-8 on its own
    assert b"".join(c for c, _ in parts).decode() == text
    assert [done for _, done in parts] == [False] * (len(parts) - 1) + [True]


def test_reassembler_joins_partial_parts_and_keeps_the_first_type() -> None:
    joiner = Reassembler(100)
    assert joiner.feed(DuplexMessage(b"ab", "UTF8", False)) is None
    assert joiner.pending == 2
    assert joiner.feed(DuplexMessage(b"cd", "UTF8", True)) == DuplexMessage(b"abcd", "UTF8")
    assert joiner.feed(DuplexMessage(b"z", "BINARY")) == DuplexMessage(b"z", "BINARY")


def test_reassembler_bounds_memory() -> None:
    joiner = Reassembler(5)
    joiner.feed(DuplexMessage(b"abc", "BINARY", False))
    with pytest.raises(OverflowError, match="max_message_bytes"):
        joiner.feed(DuplexMessage(b"def", "BINARY", False))


def test_message_repr_never_shows_the_payload() -> None:
    message = DuplexMessage(b"secret audio", "BINARY", False)
    assert "secret" not in repr(message)
    assert repr(message) == "DuplexMessage(BINARY, 12 bytes, PARTIAL)"
    assert DuplexMessage("é".encode(), "UTF8").text == "é"


# -- error answers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "cls"),
    [
        (400, "InputValidationError", ValidationError),
        (500, "InternalServerError", InternalFailureError),
        (503, "ServiceUnavailableError", ServiceUnavailableError),
        (429, "", ThrottlingError),
        (418, "", ServiceError),
    ],
)
def test_error_answers_map_to_the_smclient_tree(
    status: int, error_type: str, cls: type[ServiceError]
) -> None:
    ctx = ErrorContext("ep", "InvokeEndpointWithBidirectionalStream")
    error = translate_bidi_response(
        status,
        {"x-amzn-errortype": f"{error_type}:http://internal", "x-amzn-requestid": "rid"}
        if error_type
        else {},
        b'{"Message": "nope"}',
        ctx,
    )
    assert type(error) is cls
    assert (error.http_status, error.message, error.endpoint) == (status, "nope", "ep")


def test_model_error_keeps_the_containers_status_and_log_stream() -> None:
    error = translate_bidi_response(
        424,
        {"x-amzn-errortype": "ModelError", "x-amzn-requestid": "rid"},
        b'{"Message": "Failed to establish WebSocket connection", "OriginalStatusCode": 403,'
        b' "LogStreamArn": "arn:aws:logs:x"}',
        ErrorContext("ep", "InvokeEndpointWithBidirectionalStream"),
    )
    assert isinstance(error, ModelError)
    assert (error.original_status_code, error.log_stream_arn, error.request_id) == (
        403,
        "arn:aws:logs:x",
        "rid",
    )


def test_a_configured_proxy_is_refused_clearly_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    endpoint = Endpoint(
        "e", endpoint_url="https://vpce.example", config=ClientConfig(sign_requests=False)
    )
    with pytest.raises(ConfigurationError, match="proxies"):
        endpoint.duplex()
    monkeypatch.setenv("NO_PROXY", "vpce.example")
    endpoint.duplex()  # bypassed: built (nothing is sent before the block is entered)


def test_missing_extra_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "h2", None)  # as if smclient[duplex] were not installed
    endpoint = Endpoint(
        "e", endpoint_url="http://127.0.0.1:9", config=ClientConfig(sign_requests=False)
    )
    with pytest.raises(ConfigurationError, match=r"smclient\[duplex\]"):
        endpoint.duplex()


def test_decoder_refuses_impossible_lengths_and_joins_big_messages_in_linear_time() -> None:
    from botocore.eventstream import ParserError

    with pytest.raises(ParserError):
        Decoder().feed(b"\x00\x00\x00\x05" + b"\x00" * 12)
    big = encode_message([("n", "1")], b"z" * (4 * 1024 * 1024))
    decoder = Decoder()
    found = []
    for start in range(0, len(big), 16384):  # as HTTP/2 DATA frames deliver it
        found += decoder.feed(big[start : start + 16384])
    assert [len(e.payload) for e in found] == [4 * 1024 * 1024]


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=50))
def test_decoder_fuzz_only_parser_errors_escape(data: bytes, cut: int) -> None:
    from botocore.eventstream import ParserError

    decoder = Decoder()
    try:
        for start in range(0, len(data), cut):
            for event in decoder.feed(data[start : start + cut]):
                assert isinstance(event.payload, bytes)
    except ParserError:
        pass


@given(st.binary(max_size=200))
def test_local_frame_buffer_fuzz_only_parser_errors_escape(data: bytes) -> None:
    from botocore.eventstream import ParserError

    from smclient.local.bidi._frames import FrameBuffer

    with contextlib.suppress(ParserError):
        FrameBuffer().feed(data)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("part_size", 0),
        ("part_size", True),
        ("part_size", 1.5),
        ("max_message_bytes", 0),
        ("read_timeout", 0),
        ("read_timeout", float("nan")),
        ("read_timeout", float("inf")),
        ("close_timeout", -1),
    ],
)
def test_stream_options_are_checked_before_sending(option: str, value: object) -> None:
    endpoint = Endpoint(
        "e", endpoint_url="http://127.0.0.1:9", config=ClientConfig(sign_requests=False)
    )
    with pytest.raises(InvalidInputError) as info:
        endpoint.duplex(**{option: value})  # type: ignore[arg-type]
    assert info.value.field == option
