"""``smclient local ...``: ``serve`` a local runtime, ``check-container URL``.

``serve`` takes endpoints on the command line and/or from a JSON config file::

    smclient local serve --handler demo=mypkg.models:predict --mme models=./models
    smclient local serve --mme-container byoc=http://127.0.0.1:8080 --model-root byoc=./models
    smclient local serve --config local.json --port 8080

The config file (stdlib JSON)::

    {"host": "127.0.0.1", "port": 8080, "aws_endpoint_url": null,
     "endpoints": [{"name": "models", "model_root": "./models", "instance_count": 2,
                    "multi_model": {"invocation_window": 60, "memory_bytes": 1000000000},
                    "session_ttl": 1200,
                    "async": {"s3_output_path": "s3://bucket/out"}}]}

Endpoint keys are :class:`EndpointSpec` fields (``handler`` is an import path
``module:attribute``); ``async`` holds ``AsyncSettings`` fields. It prints the URL and
serves until Ctrl-C or SIGTERM, then shuts down: requests in progress get
``--shutdown-timeout`` seconds (default 10) per stage, after which ``serve`` names the
threads still running and exits anyway; a second Ctrl-C/SIGTERM exits at once (status 130).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from ._spec import EndpointSpec
from .multimodel._cache import MultiModelSettings

__all__ = ["run_cli"]

_SHORTHANDS = {
    "handler": "handler",
    "model": "model_dir",
    "mme": "model_root",
    "container": "container_url",
    "mme_container": "container_url",
    "image": "container_image",
    "mme_image": "container_image",
}
_CONTAINERS = ("container", "mme_container", "image", "mme_image")


class ConfigError(ValueError):
    """A bad endpoint description (exit status 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smclient local",
        description="The SageMaker runtime on loopback, and a container contract checker.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve local endpoints on loopback until interrupted")
    serve.add_argument("--config", type=Path, help="JSON file describing the endpoints")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: a free port)")
    for option, metavar, text in (
        ("--handler", "NAME=MODULE:ATTR", "a Python handler or callable"),
        ("--model", "NAME=DIR_OR_TAR_GZ", "a model directory or archive"),
        ("--mme", "NAME=ROOT_DIR", "a multi-model endpoint over a folder of models"),
        ("--container", "NAME=URL", "a running container, single-model contract"),
        ("--mme-container", "NAME=URL", "a running container, multi-model contract"),
        ("--image", "NAME=IMAGE", "a single-model image started with docker run"),
        ("--mme-image", "NAME=IMAGE", "a multi-model image started with docker run"),
        (
            "--model-root",
            "NAME=DIR_OR_S3_URL",
            "the models of the multi-model container NAME (each unpacked once into its own "
            "model directory; mounted at /opt/ml/models for an image)",
        ),
    ):
        serve.add_argument(option, action="append", default=[], metavar=metavar, help=text)
    serve.add_argument(
        "--bidi-handler",
        action="append",
        default=[],
        metavar="NAME=MODULE:ATTR",
        help="an async handler of bidirectional streams for endpoint NAME (alone: an "
        "endpoint that serves only those); needs smclient[duplex]",
    )
    serve.add_argument(
        "--bidi-container",
        action="append",
        default=[],
        metavar="NAME",
        help="front the container of endpoint NAME over the bidirectional WebSocket contract",
    )
    serve.add_argument("--instances", type=int, default=1, help="instances per endpoint")
    serve.add_argument(
        "--invocation-window", type=float, help="seconds a call waits for a model load"
    )
    serve.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help="seconds shutdown waits for requests in progress (default 10)",
    )
    check = sub.add_parser(
        "check-container", help="check a running container against the multi-model contract"
    )
    from .containers._check import add_arguments

    add_arguments(check)
    check.add_argument(
        "--bidirectional",
        action="store_true",
        help="check the bidirectional streaming contract (WebSocket) instead of the "
        "multi-model one (needs smclient[duplex])",
    )
    check.add_argument(
        "--bidi-path",
        default="invocations-bidirectional-stream",
        help="the WebSocket path (a model invocation path)",
    )
    check.add_argument(
        "--bidi-probe", default=None, help="a text message to send, expecting an answer"
    )
    return parser


def _import(path: str) -> object:
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"handler must be module:attribute, got {path!r}")
    # As with `python -m`, modules in the working directory are importable (the console
    # script alone would only see installed packages).
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import handler {path!r}: {exc}") from None
    return obj


def _spec(entry: object) -> EndpointSpec:
    if not isinstance(entry, dict):
        raise ConfigError(f"an endpoint must be a JSON object, got {entry!r}")
    entry = dict(entry)
    name = entry.get("name")
    for key in ("handler", "bidi_handler"):
        if key in entry and isinstance(entry[key], str):
            entry[key] = _import(entry[key])
    # Unknown keys (TypeError) and bad values (ValueError) in any part of the entry are
    # the user's description, not a failure to start: exit status 2, endpoint named.
    try:
        if isinstance(entry.get("multi_model"), dict):
            entry["multi_model"] = MultiModelSettings(**entry["multi_model"])
        if isinstance(entry.get("async"), dict):
            from .async_inference._worker import AsyncSettings

            entry["async_config"] = AsyncSettings(**entry.pop("async"))
        return EndpointSpec(**entry)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"endpoint {name!r}: {exc}") from None


def _entries(args: argparse.Namespace) -> tuple[dict[str, Any], list[EndpointSpec]]:
    config: dict[str, Any] = {}
    if args.config is not None:
        try:
            config = json.loads(args.config.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {args.config}: {exc}") from None
        if not isinstance(config, dict):
            raise ConfigError("the config file must hold a JSON object")
    endpoints = config.get("endpoints", [])
    if not isinstance(endpoints, list):
        raise ConfigError("'endpoints' must be a JSON list")
    entries: list[object] = list(endpoints)
    for option, field in _SHORTHANDS.items():
        for value in getattr(args, option):
            name, sep, target = value.partition("=")
            if not sep or not name or not target:
                raise ConfigError(f"--{option.replace('_', '-')} takes NAME=VALUE, got {value!r}")
            entry: dict[str, Any] = {"name": name, field: target}
            if option in ("mme_container", "mme_image"):
                entry["container_multi_model"] = True
            if option not in _CONTAINERS:
                entry["instance_count"] = args.instances
            window = args.invocation_window
            if option in ("mme", "mme_container", "mme_image") and window is not None:
                entry["multi_model"] = {"invocation_window": window}
            entries.append(entry)
    _apply_model_roots(args.model_root, entries)
    _apply_bidi(args.bidi_handler, args.bidi_container, entries)
    if not entries:
        raise ConfigError(
            "no endpoint given (use --handler/--model/--mme/--container/--bidi-handler or --config)"
        )
    try:
        return config, [_spec(e) for e in entries]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _apply_bidi(handlers: list[str], containers: list[str], entries: list[object]) -> None:
    """``--bidi-handler NAME=MODULE:ATTR`` and ``--bidi-container NAME``."""
    by_name = {e.get("name"): e for e in entries if isinstance(e, dict)}
    for value in handlers:
        name, sep, target = value.partition("=")
        if not sep or not name or not target:
            raise ConfigError(f"--bidi-handler takes NAME=MODULE:ATTR, got {value!r}")
        entry = by_name.get(name)
        if entry is None:
            entry = by_name[name] = {"name": name}
            entries.append(entry)
        entry["bidi_handler"] = target
    for name in containers:
        entry = by_name.get(name)
        if entry is None or not any(k in entry for k in ("container_url", "container_image")):
            raise ConfigError(
                f"--bidi-container {name}: no container endpoint {name!r} (give it with "
                "--container or --image)"
            )
        entry["container_bidi"] = True


def _apply_model_roots(values: list[str], entries: list[object]) -> None:
    """``--model-root NAME=ROOT``: the model root of the multi-model container ``NAME``."""
    by_name = {e.get("name"): e for e in entries if isinstance(e, dict)}
    for value in values:
        name, sep, root = value.partition("=")
        if not sep or not name or not root:
            raise ConfigError(f"--model-root takes NAME=DIR_OR_S3_URL, got {value!r}")
        entry = by_name.get(name)
        if entry is None or not entry.get("container_multi_model"):
            raise ConfigError(
                f"--model-root {name}=...: no multi-model container endpoint {name!r} "
                "(give it with --mme-container or --mme-image)"
            )
        entry["model_root"] = root


class _Interrupts:
    """The SIGINT/SIGTERM handler of ``serve``: the first signal asks for a clean
    shutdown (sets ``stop``); a second one forces the exit even while shutdown still waits
    for a stuck handler: ``force()`` when given, else ``KeyboardInterrupt``."""

    def __init__(self, stop: threading.Event, force: Callable[[], None] | None = None) -> None:
        self._stop = stop
        self._force = force
        self.count = 0

    def __call__(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count > 1:
            if self._force is not None:
                self._force()
            raise KeyboardInterrupt
        self._stop.set()


def _exit_now() -> None:
    # The forced exit of the command: at once, status 130. Not through the interpreter's
    # finalization, which can hang with a stuck model thread still holding objects (seen:
    # a process spinning in its final garbage collection after main() returned 130).
    docker = sys.modules.get("smclient.local.containers._docker")
    if docker is not None:  # containers this process started must not outlive it
        with contextlib.suppress(Exception):
            docker.remove_running(5.0)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(130)


def serve(args: argparse.Namespace, *, out: TextIO, stop: threading.Event | None = None) -> int:
    from ._runtime import LocalRuntime

    config, specs = _entries(args)
    aws = None
    if config.get("aws_endpoint_url"):
        from .async_inference._worker import AWSConnection

        aws = AWSConnection(config["aws_endpoint_url"], config.get("aws_region", "us-east-1"))
    host = args.host or config.get("host", "127.0.0.1")
    port = args.port if args.port is not None else config.get("port", 0)
    if not isinstance(host, str) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"bad host/port: {host!r}, {port!r}")
    stop = stop or threading.Event()
    if args.shutdown_timeout < 0:
        raise ConfigError("--shutdown-timeout must be >= 0 seconds")
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # Signals reach this process: a second one ends it at once (documented: status 130).
        interrupts = _Interrupts(stop, force=_exit_now)
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, interrupts)
    try:
        try:
            runtime = LocalRuntime(
                specs, host=host, port=port, aws=aws, shutdown_timeout=args.shutdown_timeout
            )
        except ValueError as exc:  # e.g. a topic the embedded S3/SNS cannot hold
            raise ConfigError(str(exc)) from None
        with _closing(runtime, out):
            print(f"smclient local runtime listening on {runtime.url}", file=out)
            for spec in specs:
                kind = "multi-model" if spec.is_multi_model else "single-model"
                if spec.async_config is not None:
                    kind += ", async"
                if spec.serves_bidi:
                    kind = "bidirectional only" if spec.is_bidi_only else kind + ", bidirectional"
                print(
                    f"  endpoint {spec.name} ({kind}, {spec.instance_count} instance(s))", file=out
                )
            _print_aws(runtime, specs, out)
            print("Press Ctrl-C to stop.", file=out, flush=True)
            while not stop.wait(0.5):
                pass
            print("shutting down", file=out, flush=True)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _print_aws(runtime: Any, specs: list[EndpointSpec], out: TextIO) -> None:
    # Async endpoints read inputs from and write outputs to S3: users must know where
    # that S3 is to create buckets and upload inputs (the embedded moto server's port is
    # chosen at startup).
    names = [s.name for s in specs if s.async_config is not None]
    if not names:
        return
    from .async_inference._aws import EmbeddedAWS

    aws = runtime.aws
    where = aws.endpoint_url or "AWS (boto3's default endpoints)"
    source = "embedded moto server" if isinstance(aws, EmbeddedAWS) else "configured"
    print(f"  async endpoints: {', '.join(names)}", file=out)
    print(f"  S3/SNS endpoint URL: {where} ({source}, region {aws.region})", file=out)
    topics = [t for s in specs if s.async_config is not None for t in s.async_config.topics]
    if topics:
        made = " (created there)" if isinstance(aws, EmbeddedAWS) else ""
        print(f"  SNS topics{made}: {', '.join(dict.fromkeys(topics))}", file=out)


@contextlib.contextmanager
def _closing(runtime: Any, out: TextIO) -> Iterator[None]:
    # Starts the runtime; on the way out closes it and says which threads (stuck
    # handlers, loads) were still running at the deadline: they are daemons, so the
    # process exits anyway.
    runtime.start()
    try:
        yield
    finally:
        leftovers = runtime.close()
        if leftovers:
            print(
                f"smclient local: still running after the shutdown deadline, exiting anyway: "
                f"{', '.join(sorted(leftovers))}",
                file=out,
                flush=True,
            )


def _check_bidirectional(args: argparse.Namespace, out: TextIO) -> int:
    from .bidi._check import check_bidi_container
    from .containers._check import format_table

    results = check_bidi_container(
        args.url, timeout=args.timeout, path=args.bidi_path, probe=args.bidi_probe
    )
    if results is None:
        out.write(f"The container at {args.url} does not answer (GET /ping): is it running?\n")
        return 2
    out.write(format_table(results))
    return 1 if any(r.result == "FAIL" for r in results) else 0


def run_cli(
    argv: Sequence[str], *, out: TextIO | None = None, stop: threading.Event | None = None
) -> int:
    """Runs ``smclient local <argv>`` (``serve`` or ``check-container``) and returns its
    exit status: 0 done, 1 could not start or a check failed, 2 bad arguments or config,
    130 interrupted twice. ``out`` receives what the command prints (default stdout);
    ``stop``, when set, ends ``serve`` like Ctrl-C / SIGTERM.

    .. versionadded:: 0.2.0
    """
    out = out or sys.stdout
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse already printed the usage
        return int(exc.code or 0)
    try:
        if args.command == "check-container" and args.bidirectional:
            return _check_bidirectional(args, out)
        if args.command == "check-container":
            from .containers._check import run_from_args

            return run_from_args(args, out=out)
        return serve(args, out=out, stop=stop)
    except ConfigError as exc:
        print(f"smclient local: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a model, the container or the port failed: no traceback
        print(f"smclient local: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
