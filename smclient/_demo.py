"""``smclient demo``: smclient against an embedded local endpoint, no AWS account needed.

It starts a local runtime on 127.0.0.1 with a single-model endpoint and a multi-model
endpoint whose models take a moment to load, then shows: a JSON invocation, a cold start
ridden out through ``ModelNotReadyException`` retries, a warm call, a model error with the
container's answer, bad input refused before anything is sent, a streamed answer, a
stateful session, and asynchronous inference on an embedded moto server.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from ._errors import InvalidInputError, ModelError
from ._retry import RetryEvent, RetryPolicy


class _Sentiment:
    """A tiny lexicon model: the weights come from the model directory's ``model.json``."""

    def __init__(self, model_dir: Path) -> None:
        spec = json.loads((model_dir / "model.json").read_text())
        self.name: str = spec["name"]
        self.weights: dict[str, int] = spec["weights"]

    def predict(self, body: bytes, content_type: str | None, accept: str | None) -> bytes:
        text = json.loads(body)["text"].lower()
        score = sum(self.weights.get(word.strip(".,!?"), 0) for word in text.split())
        label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
        return json.dumps({"model": self.name, "label": label, "score": score}).encode()


def _loader(load_seconds: float) -> Any:
    """Loads a model directory as SageMaker does on the first call for it (the cold start):
    the sleep stands in for downloading and loading weights from S3."""

    def load(model_dir: Path) -> _Sentiment:
        time.sleep(load_seconds)
        return _Sentiment(model_dir)

    return load


class _Echo:
    """The single-model endpoint: answers with what it was sent, or a model error; streams
    one JSON line per word; remembers a conversation per session."""

    def predict(
        self, body: bytes, content_type: str | None, accept: str | None, session: Any = None
    ) -> Any:
        from .local import HandlerError, HandlerReply

        payload = json.loads(body)
        if payload.get("fail"):
            raise HandlerError("the model refused this input: 'fail' is set", status_code=422)
        if session is not None:  # a stateful session: the context lives on this instance
            session.setdefault("turns", []).append(payload.get("say", ""))
            reply: dict[str, Any] = {"turn": len(session["turns"]), "history": session["turns"]}
        else:
            reply = {"echo": payload, "length": len(body)}
        return HandlerReply(json.dumps(reply).encode(), content_type="application/json")

    def stream(self, body: bytes, content_type: str | None, accept: str | None) -> Any:
        for index, word in enumerate(json.loads(body)["text"].split()):
            line = json.dumps({"index": index, "token": word}) + "\n"
            # Split every line across two chunks, as real model servers do.
            yield line[:5].encode()
            yield line[5:].encode()


def _async_section(say: Any) -> None:
    """Asynchronous inference through S3 and SNS on an embedded moto server."""
    import boto3

    from . import Endpoint, as_completed
    from .local import AsyncSettings, EmbeddedAWS, EndpointSpec, LocalRuntime
    from .notifications import subscribe

    def score(body: bytes, content_type: str | None, accept: str | None) -> bytes:
        return json.dumps({"score": len(json.loads(body)["text"])}).encode()

    session = boto3.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
    )
    with EmbeddedAWS() as aws:
        control = Endpoint("scorer", boto3_session=session, aws_endpoint_url=aws.endpoint_url)
        s3, sns = control.client("s3"), control.client("sns")
        s3.create_bucket(Bucket="demo-async")
        ok = sns.create_topic(Name="demo-ok")["TopicArn"]
        failed = sns.create_topic(Name="demo-failed")["TopicArn"]
        settings = AsyncSettings(
            s3_output_path="s3://demo-async/out", success_topic=ok, error_topic=failed
        )
        with subscribe(ok, failed, endpoint=control) as subscription:
            spec = EndpointSpec("scorer", handler=score, async_config=settings)
            with LocalRuntime([spec], aws=aws) as runtime:
                scorer = Endpoint(
                    "scorer",
                    boto3_session=session,
                    endpoint_url=runtime.url,
                    aws_endpoint_url=aws.endpoint_url,
                )
                texts = ["short", "a little longer", "the longest text of them all"]
                handles = [
                    scorer.submit(
                        {"text": t}, input_prefix="s3://demo-async/in", accept="application/json"
                    )
                    for t in texts
                ]
                say(f"   submitted {len(handles)}; first handle: {handles[0].inference_id}")
                poller = subscription.poller(wait_time_seconds=1)
                for done in as_completed(handles, timeout=30, poller=poller):
                    say(
                        f"   {done.invocation.inference_id[:8]}...: {done.result()} "
                        f"(seen via {done.source})"
                    )
                scorer.close()
        control.close()


def _duplex_section(say: Any) -> None:
    """A bidirectional stream: audio-like binary chunks in while text comes out, blocking
    and asyncio (needs the ``duplex`` extra)."""
    import asyncio

    from .local import EndpointSpec, LocalRuntime

    async def transcriber(call: Any) -> None:
        heard = 0
        async for message in call:
            if message.is_text:  # the application's "done"
                await call.send(f"final: {heard} bytes of audio")
                return
            heard += len(message.data)
            await call.send(f"partial: {heard} bytes so far")

    chunks = [bytes(3200)] * 3  # 100 ms each of 16 kHz 16-bit silence
    with LocalRuntime([EndpointSpec("transcriber", bidi_handler=transcriber)]) as runtime:
        endpoint = runtime.endpoint("transcriber")
        with endpoint.duplex() as stream:
            for chunk in chunks:
                stream.send(chunk)  # bytes -> BINARY
                say(f"   {stream.receive().text}")  # type: ignore[union-attr]
            stream.send("done")  # str -> UTF8
            say(f"   {[m.text for m in stream]}")

        async def talk() -> list[str]:
            async with endpoint.duplex_async() as stream:
                for chunk in chunks:
                    await stream.send(chunk)
                await stream.send("done")
                return [m.text async for m in stream]

        say(f"   asyncio: {asyncio.run(talk())[-1]}")


def run(
    out: TextIO, *, load_seconds: float = 1.5, window: float = 0.5, with_async: bool = True
) -> int:
    """Run the demo, writing to ``out``. Returns the exit status."""
    from .local import EndpointSpec, LocalRuntime, MultiModelSettings

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    # The two sample models ship with smclient as small files: no downloads.
    with resources.as_file(resources.files("smclient") / "_demo_models") as root:
        specs = [
            EndpointSpec("echo", handler=_Echo()),
            EndpointSpec(
                "sentiment-models",
                model_root=root,
                loader=_loader(load_seconds),
                multi_model=MultiModelSettings(invocation_window=window),
            ),
        ]
        with LocalRuntime(specs) as runtime:
            say(f"local runtime listening on {runtime.url} (endpoints: echo, sentiment-models)")

            say("\n1. Invoke a single-model endpoint with JSON")
            echo = runtime.endpoint("echo")
            result = echo.invoke({"inputs": [1, 2, 3]})
            say(f"   {result!r}")
            say(f"   json(): {result.json()}")

            say("\n2. Cold start on a multi-model endpoint: the model loads for")
            say(f"   {load_seconds} s, the runtime holds each call {window} s, then answers")
            say("   ModelNotReadyException; the retry policy rides it out")

            def on_retry(event: RetryEvent) -> None:
                say(
                    f"   retry: attempt {event.attempt} got {event.error_code} after "
                    f"{event.elapsed:.2f} s; waiting {event.delay:.2f} s"
                )

            models = runtime.endpoint("sentiment-models", retry=RetryPolicy(on_retry=on_retry))
            v1 = models.model("sentiment-v1")
            cold = v1.invoke({"text": "I love this, it is great!"})
            say(f"   {cold.json()} after {cold.attempts} attempts in {cold.elapsed:.2f} s")

            say("\n3. The same model again: warm, one attempt")
            warm = v1.invoke({"text": "This is awful."})
            say(f"   {warm.json()} after {warm.attempts} attempt in {warm.elapsed * 1000:.1f} ms")
            v2 = models.model("sentiment-v2").invoke({"text": "Fast, fine, love it."})
            say(f"   the other model (cold too): {v2.json()} after {v2.attempts} attempts")

            say("\n4. A model error keeps the container's answer")
            try:
                echo.invoke({"fail": True})
            except ModelError as err:
                say(f"   ModelError: original status {err.original_status_code},")
                say(f"   message {err.original_message!r},")
                say(f"   request id {err.request_id}")

            say("\n5. Bad input is refused before anything is sent")
            try:
                models.invoke(b"{}", target_model=" sentiment-v1")
            except InvalidInputError as err:
                say(f"   InvalidInputError: {err}")

            stats = runtime.model_stats("sentiment-models")
            say("\n6. What the local multi-model endpoint saw")
            for name, stat in sorted(stats.items()):
                say(f"   {name}: loaded={stat.loaded} loads={stat.loads} hits={stat.hits}")

            say("\n7. A streamed answer, split across chunks, read as JSON lines")
            with echo.stream({"text": "streams never hang on a partial line"}) as stream:
                tokens = [item["token"] for item in stream.json_lines()]
            say(f"   {tokens}")
            say(
                f"   {stream.chunks_received} chunks, {stream.bytes_received} bytes, first byte "
                f"after {(stream.time_to_first_byte or 0) * 1000:.1f} ms"
            )

            say("\n8. A stateful session: the context stays on the instance that holds it")
            with echo.session() as chat:
                say(f"   opened {chat.info.id[:12]}..., expires {chat.info.expires_at:%H:%M:%S}")
                for words in ("hello", "how are you?"):
                    say(f"   {chat.invoke({'say': words}).json()}")
            say(f"   closed: {chat.state.value}")

        if with_async:
            say("\n9. Asynchronous inference: S3 in, S3 out, SNS notifications via SQS")
            _async_section(say)
        say("\n10. A bidirectional stream (HTTP/2): audio chunks in, text out")
        try:
            import h2  # noqa: F401
        except ImportError:
            say("   skipped: needs pip install 'smclient[duplex]'")
        else:
            _duplex_section(say)
        say("\nlocal runtime stopped; nothing left running")
    return 0
