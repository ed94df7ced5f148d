"""Sessions: tests, lint, typecheck, docs, bench, demo. Run one with ``nox -s NAME``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (the README's test command, in a fresh virtual environment)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package, and the typing test file."""
    session.install("-e", ".[dev]")
    session.run("mypy", "--strict", "smclient")
    session.run("mypy", "--strict", "tests/typing_check.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Check the docs: every Python block compiles, every relative link resolves,
    and the examples marked runnable run."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "tests/test_docs.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: per-call overhead against raw boto3, import time, streaming, the async
    poller, the local endpoint, and batch scoring (invoke_many, Dask, Ray)."""
    session.install("-e", ".[test]")
    session.run("python", "tests/benchmarks/bench_invoke.py", *session.posargs)
    session.run("python", "tests/benchmarks/bench_import.py")
    session.run("python", "tests/benchmarks/bench_stream.py")
    session.run("python", "tests/benchmarks/bench_poller.py")
    session.run("python", "tests/benchmarks/bench_local.py")
    session.run("python", "tests/benchmarks/bench_batch.py")


@nox.session
def demo(session: nox.Session) -> None:
    """The demo against the embedded local endpoint (no AWS account needed)."""
    session.install("-e", ".[local]")
    session.run("smclient", "demo")


@nox.session
def mms(session: nox.Session) -> None:
    """The local runtime in front of a real multi-model-server + SageMaker inference toolkit
    process on loopback (needs Java; the test skips, saying why, without it)."""
    session.install("-e", ".[test,mms]")
    session.run("python", "-m", "pytest", "tests/local/test_mms_real.py", "-rs", *session.posargs)
