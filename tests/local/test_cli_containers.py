"""``smclient local serve`` with multi-model containers (``--model-root``) and with async
endpoints whose SNS topics live in the embedded moto server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from smclient.local import run_cli as main

from .fake_container import FakeContainer
from .test_byoc_models import make_root
from .test_cli import Served, shout


def test_serve_an_mme_container_with_a_model_root(tmp_path: Path, client_for: Any) -> None:
    root = make_root(tmp_path)
    with (
        FakeContainer(check_model_dirs=True) as fake,
        Served(
            ["serve", "--mme-container", f"byoc={fake.url}", "--model-root", f"byoc={root}"]
        ) as served,
    ):
        client = client_for(served.out.url)
        response = client.invoke_endpoint(
            EndpointName="byoc", TargetModel="packed.tar.gz", Body=b"cli"
        )
        assert response["Body"].read() == b"packed:cli"
    assert "endpoint byoc (multi-model, 1 instance(s))" in served.out.getvalue()
    assert served.rc == [0]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--model-root", "x=/tmp"], "no multi-model container endpoint 'x'"),
        (["--model-root", "nothing"], "--model-root takes NAME=DIR_OR_S3_URL"),
        (["--handler", f"x={__name__}:shout", "--model-root", "x=/tmp"], "no multi-model"),
        (["--mme-image", "x=img"], "needs model_root"),
    ],
)
def test_bad_model_roots_exit_2(argv: list[str], fragment: str, capsys: Any) -> None:
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert "Traceback" not in err


def test_serve_creates_the_sns_topics_of_async_endpoints_in_the_embedded_moto(
    tmp_path: Path,
) -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:cli-results"
    config = {
        "endpoints": [
            {
                "name": "scorer",
                "handler": f"{__name__}:shout",
                "async": {
                    "s3_output_path": "s3://cli-topic-bucket/out",
                    "success_topic": topic,
                    "error_topic": topic,
                },
            }
        ]
    }
    path = tmp_path / "local.json"
    path.write_text(json.dumps(config))
    with Served(["serve", "--config", str(path)]) as served:
        text = served.out.getvalue()
        assert f"SNS topics (created there): {topic}\n" in text
    assert served.rc == [0]


def test_a_topic_the_embedded_moto_cannot_hold_exits_2(tmp_path: Path, capsys: Any) -> None:
    config = {
        "endpoints": [
            {
                "name": "scorer",
                "handler": f"{__name__}:shout",
                "async": {
                    "s3_output_path": "s3://cli-bucket/out",
                    "success_topic": "arn:aws:sns:eu-west-1:999999999999:elsewhere",
                },
            }
        ]
    }
    path = tmp_path / "local.json"
    path.write_text(json.dumps(config))
    assert main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cannot exist in the embedded moto server" in err
    assert "arn:aws:sns:us-east-1:123456789012:<name>" in err


def test_a_missing_topic_on_a_configured_sns_exits_1(tmp_path: Path, capsys: Any) -> None:
    # With aws_endpoint_url the runtime does not create topics: a missing one is a failure
    # to start (status 1) that names the topic.
    from smclient.local import EmbeddedAWS

    with EmbeddedAWS() as aws:
        config = {
            "aws_endpoint_url": aws.endpoint_url,
            "endpoints": [
                {
                    "name": "scorer",
                    "handler": f"{__name__}:shout",
                    "async": {
                        "s3_output_path": "s3://cli-bucket/out",
                        "success_topic": "arn:aws:sns:us-east-1:123456789012:never-made-xyz",
                    },
                }
            ],
        }
        path = tmp_path / "local.json"
        path.write_text(json.dumps(config))
        assert main(["serve", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "cannot start" in err
    assert "never-made-xyz" in err


assert shout  # imported for the handler path above
