"""Result values."""

from __future__ import annotations

from typing import Any

import attrs

from ._codecs import JSON, Codec

__all__ = ["InvocationResult"]


@attrs.frozen(repr=False)
class InvocationResult:
    """The answer to one real-time invocation.

    ``body`` (bytes), ``content_type``, ``invoked_production_variant``,
    ``custom_attributes``, ``request_id`` (of the last request), ``attempts``
    (requests sent, retries included), ``elapsed`` (seconds from the first attempt's
    start to the body read), ``new_session_id`` / ``closed_session_id`` (raw session
    headers, when the endpoint sent them).

    .. versionadded:: 0.1.0
    """

    body: bytes
    content_type: str | None
    invoked_production_variant: str | None
    custom_attributes: str | None
    request_id: str | None
    attempts: int
    elapsed: float
    new_session_id: str | None = None
    closed_session_id: str | None = None

    def json(self) -> Any:
        """The body decoded as JSON."""
        return JSON.decode(self.body)

    def text(self, encoding: str = "utf-8") -> str:
        """The body decoded as text."""
        return self.body.decode(encoding)

    def decode(self, codec: Codec) -> Any:
        """The body decoded with ``codec`` (for example ``smclient.NPY``)."""
        return codec.decode(self.body)

    def _repr_html_(self) -> str:  # notebooks: a short, escaped summary
        from ._html import invocation_result

        return invocation_result(self)

    def __repr__(self) -> str:
        # Never the body itself: it may be large or sensitive.
        return (
            f"InvocationResult(body=<{len(self.body)} bytes>, content_type={self.content_type!r}, "
            f"invoked_production_variant={self.invoked_production_variant!r}, "
            f"request_id={self.request_id!r}, attempts={self.attempts}, "
            f"elapsed={self.elapsed:.3f})"
        )
