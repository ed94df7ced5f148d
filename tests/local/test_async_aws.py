"""EmbeddedAWS: moto on loopback, started and stopped without leftovers."""

from __future__ import annotations

import socket
import sys
import threading
from urllib.parse import urlsplit

import pytest

from smclient.local.async_inference._worker import AWSConnection, EmbeddedAWS

pytest.importorskip("moto")


def _port_open(url: str) -> bool:
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((parts.hostname, parts.port or 80)) == 0


def test_start_serve_stop_leaves_no_thread_or_port() -> None:
    before = set(threading.enumerate())
    aws = EmbeddedAWS()
    with pytest.raises(RuntimeError, match="not running"):
        _ = aws.endpoint_url
    with aws:
        url = aws.endpoint_url
        assert aws.running
        assert aws.start() is aws  # idempotent
        assert _port_open(url)
        s3 = aws.client("s3")
        s3.create_bucket(Bucket="smclient-aws-lifecycle")
        names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert "smclient-aws-lifecycle" in names
        # A second client keeps its own keep-alive connection: stop must end it too.
        assert aws.client("sqs").list_queues().get("QueueUrls", []) is not None
        assert set(threading.enumerate()) - before
    assert not aws.running
    assert not (set(threading.enumerate()) - before)
    assert not _port_open(url)
    aws.stop()  # idempotent


def test_stop_ends_connections_of_clients_it_did_not_hand_out() -> None:
    before = set(threading.enumerate())
    with EmbeddedAWS() as aws:
        import boto3

        outsider = boto3.session.Session().client(
            "s3",
            region_name=aws.region,
            endpoint_url=aws.endpoint_url,
            aws_access_key_id="x",
            aws_secret_access_key="y",
        )
        outsider.list_buckets()  # leaves an idle keep-alive connection and its server thread
    try:
        assert not (set(threading.enumerate()) - before)
    finally:
        outsider.close()


def test_restart_gets_a_working_server() -> None:
    aws = EmbeddedAWS(region="eu-west-1")
    for _ in range(2):
        with aws:
            sns = aws.client("sns")
            arn = sns.create_topic(Name="smclient-restart")["TopicArn"]
            assert arn.startswith("arn:aws:sns:eu-west-1:")


def test_aws_connection_builds_clients_for_its_url_and_region() -> None:
    connection = AWSConnection("http://127.0.0.1:9", "ap-south-1")
    client = connection.client("s3")
    try:
        assert client.meta.region_name == "ap-south-1"
        assert client.meta.endpoint_url == "http://127.0.0.1:9"
    finally:
        client.close()
    with pytest.raises(attrs_frozen_error()):
        connection.region = "us-east-1"  # type: ignore[misc]


def attrs_frozen_error() -> type[Exception]:
    import attrs.exceptions

    return attrs.exceptions.FrozenInstanceError


def test_a_missing_moto_is_reported_with_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "moto.moto_server.werkzeug_app", None)
    with pytest.raises(ImportError, match=r"smclient\[local\]"):
        EmbeddedAWS().start()
