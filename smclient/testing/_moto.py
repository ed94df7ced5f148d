"""Typed helpers for moto's queued SageMaker runtime results (protocol.md §7)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

__all__ = ["MotoAsyncResult", "MotoResult", "queue_moto_async_results", "queue_moto_results"]

_IN_PROCESS = "http://motoapi.amazonaws.com"


@attrs.frozen
class MotoResult:
    """One result moto's ``invoke_endpoint`` returns (taken in order from its queue; moto
    then repeats it for the same endpoint, headers and body).

    .. versionadded:: 0.1.0
    """

    body: str
    content_type: str | None = None
    invoked_production_variant: str | None = None
    custom_attributes: str | None = None

    def to_moto(self) -> dict[str, str]:
        """The result as moto's ``endpoint-results`` API takes it (``Body``,
        ``ContentType``, ...), leaving out fields that are ``None``."""
        found = {
            "Body": self.body,
            "ContentType": self.content_type,
            "InvokedProductionVariant": self.invoked_production_variant,
            "CustomAttributes": self.custom_attributes,
        }
        return {k: v for k, v in found.items() if v is not None}


@attrs.frozen
class MotoAsyncResult:
    """One result moto's ``invoke_endpoint_async`` writes (``response.json`` or
    ``failure.json`` in a new ``sagemaker-output-*`` bucket).

    .. versionadded:: 0.1.0
    """

    data: str
    is_failure: bool = False


def _post(route: str, payload: Mapping[str, Any], moto_url: str | None) -> None:
    import requests  # moto depends on requests; the in-process mock intercepts it

    response = requests.post(f"{moto_url or _IN_PROCESS}{route}", json=dict(payload), timeout=10)
    response.raise_for_status()


def queue_moto_results(
    results: Iterable[MotoResult],
    *,
    region: str = "us-east-1",
    account_id: str = "123456789012",
    moto_url: str | None = None,
) -> None:
    """Queue ``results`` for moto's ``invoke_endpoint``: inside ``mock_aws()`` (default) or
    on a moto server at ``moto_url`` (for example ``ThreadedMotoServer``'s address).

    .. versionadded:: 0.1.0
    """
    payload = {
        "account_id": account_id,
        "region": region,
        "results": [r.to_moto() for r in results],
    }
    _post("/moto-api/static/sagemaker/endpoint-results", payload, moto_url)


def queue_moto_async_results(
    results: Iterable[MotoAsyncResult],
    *,
    region: str = "us-east-1",
    account_id: str = "123456789012",
    moto_url: str | None = None,
) -> None:
    """Queue ``results`` for moto's ``invoke_endpoint_async`` (see :func:`queue_moto_results`).

    .. versionadded:: 0.1.0
    """
    payload = {
        "account_id": account_id,
        "region": region,
        "results": [{"data": r.data, "is_failure": r.is_failure} for r in results],
    }
    _post("/moto-api/static/sagemaker/async-endpoint-results", payload, moto_url)
