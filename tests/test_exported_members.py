import smclient
import smclient.testing


def test_public_names_are_pinned() -> None:
    assert smclient.__all__ == [
        "CSV",
        "JSON",
        "NPY",
        "RAW",
        "AsyncDuplexStream",
        "AsyncEndpoint",
        "AsyncInferenceError",
        "AsyncInvocation",
        "AsyncModelHandle",
        "AsyncResponseStream",
        "AsyncSession",
        "AsyncTimeoutError",
        "BatchItem",
        "BatchResult",
        "BatchRun",
        "BatchSummary",
        "CSVCodec",
        "ClientConfig",
        "Codec",
        "Completion",
        "ConfigurationError",
        "ConnectError",
        "ConnectionClosedError",
        "DuplexClosedError",
        "DuplexMessage",
        "DuplexStream",
        "Endpoint",
        "EndpointCreationError",
        "InternalDependencyError",
        "InternalFailureError",
        "InternalStreamFailureError",
        "InvalidInputError",
        "InvocationResult",
        "JSONCodec",
        "ModelError",
        "ModelHandle",
        "ModelNotReadyError",
        "ModelStreamError",
        "NPYCodec",
        "Poller",
        "RawCodec",
        "ReadTimeoutError",
        "ReconnectEvent",
        "ReconnectPolicy",
        "ResponseStream",
        "RetriesExhaustedError",
        "RetryEvent",
        "RetryPolicy",
        "RetryReason",
        "S3AccessDeniedError",
        "S3Object",
        "SMClientError",
        "SSEEvent",
        "Scorer",
        "ServiceError",
        "ServiceUnavailableError",
        "Session",
        "SessionClosedError",
        "SessionError",
        "SessionExpiredError",
        "SessionHeaderError",
        "SessionInfo",
        "SessionProtocol",
        "SessionState",
        "StreamInterruptedError",
        "StreamReconnectedError",
        "StreamTimeoutError",
        "ThrottlingError",
        "TransportError",
        "ValidationError",
        "WaitResult",
        "as_completed",
        "as_completed_async",
        "create_async_endpoint",
        "create_multi_model_endpoint",
        "delete_endpoint",
        "wait",
        "wait_async",
    ]


def test_all_is_sorted_and_complete() -> None:
    assert smclient.__all__ == sorted(smclient.__all__, key=lambda n: (not n.isupper(), n))
    for name in smclient.__all__:
        assert hasattr(smclient, name), name


def test_public_classes_say_smclient_in_tracebacks() -> None:
    for name in smclient.__all__:
        obj = getattr(smclient, name)
        if isinstance(obj, type):
            assert obj.__module__ == "smclient", name


def test_testing_namespace_is_pinned() -> None:
    assert smclient.testing.__all__ == [
        "MotoAsyncResult",
        "MotoResult",
        "RecordedRequest",
        "Reply",
        "ScriptedRuntime",
        "no_retry_waits",
        "queue_moto_async_results",
        "queue_moto_results",
    ]


def test_import_builds_no_client_and_does_not_import_boto3() -> None:
    import subprocess
    import sys

    code = (
        "import sys, smclient; "
        "print(*[m in sys.modules for m in ('boto3', 'numpy', 'tenacity', 'smclient._asyncinference', "
        "'smclient._batch', 'smclient._duplex', 'h2')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"] * 7
