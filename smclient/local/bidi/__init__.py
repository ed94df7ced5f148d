"""The local runtime's side of bidirectional streaming
(``InvokeEndpointWithBidirectionalStream``): an HTTP/2 loopback server hosting Python
async handlers, so smclient's ``Endpoint.duplex`` and other HTTP/2 clients can be pointed
at it with no AWS account.

.. code-block:: python

    from smclient import ClientConfig, Endpoint
    from smclient.local.bidi import BidiServer

    async def echo(call):
        async for message in call:
            await call.send(message.data.upper())

    with BidiServer(echo) as server:
        endpoint = Endpoint("echo", endpoint_url=server.url,
                            config=ClientConfig(sign_requests=False))
        with endpoint.duplex() as stream:
            stream.send(b"hello")
            print(stream.receive().data)       # b'HELLO'

Needs ``pip install 'smclient[duplex]'``. See ``docs/duplex.md``.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

from ._check import check_bidi_container
from ._container import ContainerBidiHandler
from ._server import BidiCall, BidiModelError, BidiRejection, BidiServer, BidiStreamFailure
from ._verify import EventChain, SignatureError, verify_request

__all__ = [
    "BidiCall",
    "BidiModelError",
    "BidiRejection",
    "BidiServer",
    "BidiStreamFailure",
    "ContainerBidiHandler",
    "EventChain",
    "SignatureError",
    "check_bidi_container",
    "verify_request",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("smclient.local.bidi._"):
        _obj.__module__ = __name__
del _name, _obj
