"""The ``smclient`` command: ``smclient demo``, ``smclient local serve|check-container``,
``smclient version``. Also ``python -m smclient ...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["local"]:
        from .local import run_cli

        return run_cli(args[1:])

    parser = argparse.ArgumentParser(
        prog="smclient", description="A typed client for SageMaker inference endpoints."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the demo against an embedded local endpoint")
    demo.add_argument("--load-seconds", type=float, default=1.5, help="model load time (s)")
    demo.add_argument(
        "--no-async", action="store_true", help="skip async inference (needs smclient[local])"
    )
    commands.add_parser("local", help="the local endpoint: 'smclient local --help'")
    commands.add_parser("version", help="print the version")
    parsed = parser.parse_args(args)

    if parsed.command == "version":
        from . import __version__

        print(__version__)
        return 0
    from ._demo import run

    return run(sys.stdout, load_seconds=parsed.load_seconds, with_async=not parsed.no_async)
