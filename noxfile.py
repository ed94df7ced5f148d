"""Sessions: tests, lint, typecheck, docs, notebooks, package, bench, demo. Run one with
``nox -s NAME``; CI (``.ci/run``) runs them in its own environment with ``nox --no-venv``."""

from __future__ import annotations

import glob
import shutil

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs", "package"]
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
    """The documentation site, strict: the code-block and link checks of the pages, the
    reference checks, ``mkdocs build --strict`` (a broken link, a missing reference or any
    warning fails it), then every notebook run top to bottom. ``-- --no-notebooks`` builds
    only; the site lands in ``site/``."""
    _install(session, "-e", ".[test,docs]")
    session.run("python", "-m", "pytest", "tests/test_docs.py", "tests/test_docs_recipes.py")
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})
    if "--no-notebooks" not in session.posargs:
        notebooks(session)


@nox.session
def notebooks(session: nox.Session) -> None:
    """Run every notebook in docs/notebooks/ top to bottom against the embedded local
    endpoint (no AWS account, no network), failing on the first error."""
    _install(session, "-e", ".[docs]")
    session.run("python", "docs/_tools/run_notebooks.py", *session.posargs)


@nox.session
def package(session: nox.Session) -> None:
    """Build the sdist and the wheel, ``twine check`` them, and check what the wheel holds
    (py.typed, the demo's sample models, nothing from tests/)."""
    _install(session, "build>=1.2", "twine>=5.1")
    shutil.rmtree("dist", ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", "dist")
    session.run("twine", "check", "--strict", *_dists(session))
    session.run("python", "tests/check_dist.py", *_dists(session))


def _install(session: nox.Session, *args: str) -> None:
    """``session.install``, except under ``nox --no-venv`` (CI), whose environment already
    has everything from ``pip install -e '.[dev]'``."""
    if session.venv_backend != "none":
        session.install(*args)


def _dists(session: nox.Session) -> list[str]:
    return sorted(glob.glob("dist/smclient-*.tar.gz") + glob.glob("dist/smclient-*.whl"))


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: per-call overhead against raw boto3, import time, streaming, the async
    poller, the local endpoint, and batch scoring (invoke_many, Dask, Ray)."""
    session.install("-e", ".[test]")
    session.run("python", "tests/benchmarks/bench_invoke.py", *session.posargs)
    session.run("python", "tests/benchmarks/bench_asyncio.py")
    session.run("python", "tests/benchmarks/bench_import.py")
    session.run("python", "tests/benchmarks/bench_stream.py")
    session.run("python", "tests/benchmarks/bench_poller.py")
    session.run("python", "tests/benchmarks/bench_local.py")
    session.run("python", "tests/benchmarks/bench_batch.py")
    # smclient alone here; `nox -s bench_official` adds the official client (Python 3.12).
    session.run("python", "tests/benchmarks/bench_duplex.py")


@nox.session
def demo(session: nox.Session) -> None:
    """The demo against the embedded local endpoint (no AWS account needed)."""
    session.install("-e", ".[local,duplex]")
    session.run("smclient", "demo")


def _python312() -> str:
    """A Python 3.12 interpreter: on PATH, else pyenv's (nox skips the session if none)."""
    import glob
    import os
    import shutil

    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(glob.glob(os.path.join(root, "versions", "3.12.*", "bin", "python3.12")))
    return found[-1] if found else (shutil.which("python3.12") or "3.12")


@nox.session(python=_python312())
def official_client(session: nox.Session) -> None:
    """The official aws-sdk-sagemaker-runtime-http2 client (Python >= 3.12, CRT transport)
    against the local bidirectional runtime; its test skips in the default suite."""
    session.install("-e", ".[local,duplex]", "pytest>=8", "aws-sdk-sagemaker-runtime-http2[awscrt]")
    session.run(
        "python", "-m", "pytest", "tests/local/test_bidi_official_client.py", *session.posargs
    )


@nox.session(python=_python312())
def bench_official(session: nox.Session) -> None:
    """Bidirectional streaming through the local runtime: smclient and the official client
    side by side in one run (the official client needs Python >= 3.12)."""
    session.install("-e", ".[test]", "aws-sdk-sagemaker-runtime-http2[awscrt]")
    session.run("python", "tests/benchmarks/bench_duplex.py", *session.posargs)


@nox.session
def mms(session: nox.Session) -> None:
    """The local runtime in front of a real multi-model-server + SageMaker inference toolkit
    process on loopback (needs Java; the test skips, saying why, without it)."""
    session.install("-e", ".[test,mms]")
    session.run("python", "-m", "pytest", "tests/local/test_mms_real.py", "-rs", *session.posargs)
