"""Reading an ``async-invocations`` request from its headers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..server._wire import ServiceError
from ._types import AsyncRequest

__all__ = ["async_request"]

_ASYNC_HEADERS = {
    "content_type": "x-amzn-sagemaker-content-type",
    "accept": "x-amzn-sagemaker-accept",
    "custom_attributes": "x-amzn-sagemaker-custom-attributes",
    "inference_id": "x-amzn-sagemaker-inference-id",
    "s3_output_path_extension": "x-amzn-sagemaker-s3outputpathextension",
    "filename": "x-amzn-sagemaker-filename",
    "request_ttl_seconds": "x-amzn-sagemaker-requestttlseconds",
    "invocation_timeout_seconds": "x-amzn-sagemaker-invocationtimeoutseconds",
}


def async_request(headers: Mapping[str, str]) -> Any:
    """The ``AsyncRequest`` of ``async-invocations`` headers (lower-case names); absent
    headers keep the request's defaults. 400 for a missing input or a non-integer."""
    kwargs: dict[str, Any] = {
        field: headers[header] for field, header in _ASYNC_HEADERS.items() if header in headers
    }
    for field in ("request_ttl_seconds", "invocation_timeout_seconds"):
        if field in kwargs:
            try:
                kwargs[field] = int(kwargs[field])
            except ValueError:
                raise ServiceError.validation(f"{field} must be an integer.") from None
    location = headers.get("x-amzn-sagemaker-inputlocation")
    if not location:
        raise ServiceError.validation("The InputLocation header is required.")
    return AsyncRequest(input_location=location, **kwargs)
