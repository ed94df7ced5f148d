"""Shared helpers for the local endpoint tests: plain boto3 clients pinned to one attempt."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config


def make_client(url: str, **config: Any) -> Any:
    """A PLAIN boto3 sagemaker-runtime client for a loopback server (dummy credentials)."""
    config.setdefault("retries", {"total_max_attempts": 1, "mode": "standard"})
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(**config),
    )


@pytest.fixture
def client_for() -> Iterator[Callable[..., Any]]:
    """Factory of plain boto3 clients, closed when the test ends."""
    clients: list[Any] = []

    def factory(url: str, **config: Any) -> Any:
        clients.append(make_client(url, **config))
        return clients[-1]

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    """Fails the test if it leaves a thread running."""
    before = set(threading.enumerate())
    yield
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not left, f"threads left running: {left}"
