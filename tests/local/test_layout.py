"""The layout of ``smclient.local``, pinned: users' import paths, the one-way dependency on
the core, and the order of the subpackages (each may import only from those before it)."""

from __future__ import annotations

import ast
import importlib
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import smclient.local

PACKAGE = Path(smclient.local.__file__).parent
CORE = PACKAGE.parent

# Lowest first: a module may import from its own subpackage and from those listed before it.
LAYERS = [
    "server",
    "hosting",
    "multimodel",
    "sessions",
    "async_inference",
    "containers",
    "<top>",  # smclient/local/*.py: the spec, the hosted endpoint, the runtime and the CLI
]


def _imports(path: Path) -> list[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    package = parts[:-1]  # a module's package; for __init__.py, its own folder
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if node.module is None:
                names += [f"{module}.{alias.name}" for alias in node.names]
            else:
                names.append(module)
    return names


def _layer(module: str) -> str:
    rest = module.removeprefix("smclient.local").lstrip(".").split(".")
    return rest[0] if rest[0] in LAYERS else "<top>"


def test_every_public_name_imports_from_smclient_local() -> None:
    # The import paths users have: `from smclient.local import X` for every name they had,
    # each object still naming smclient.local as its module (tracebacks, pickles, docs).
    before = [
        "AWSConnection", "AsyncSettings", "AsyncStats", "CheckResult", "ContainerClient",
        "ContainerError", "ContainerModel", "ContainerModelPage", "ContainerProtocolError",
        "ContainerResponse", "ContainerTimeoutError", "ContainerUnreachableError", "EmbeddedAWS",
        "EndpointSpec", "HandlerError", "HandlerReply", "LocalEndpoint", "LocalRuntime",
        "LocalSessionInfo", "ModelHandler", "ModelStats", "MultiModelSettings", "ServiceFault",
        "SessionHandler", "StreamError", "StreamFaults", "StreamingHandler", "check_container",
        "run_check",
    ]  # fmt: skip
    for name in before:
        obj = getattr(importlib.import_module("smclient.local"), name)
        assert obj.__module__ == "smclient.local", name
    assert set(before) <= set(smclient.local.__all__)


def test_values_pickle_by_their_public_path() -> None:
    info = smclient.local.LocalSessionInfo("abc", 0, 1.0)
    data = pickle.dumps(info)
    assert b"smclient.local" in data
    assert b"smclient.local.sessions" not in data
    assert pickle.loads(pickle.dumps(info)) == info
    error = smclient.local.HandlerError("boom", 507)
    again = pickle.loads(pickle.dumps(error))
    assert (again.message, again.status_code) == ("boom", 507)


def test_the_core_reaches_the_local_runtime_only_through_public_names() -> None:
    offenders = []
    for path in CORE.rglob("*.py"):
        if PACKAGE in path.parents:
            continue
        for module in _imports(path):
            if (
                module.startswith("smclient.local.")
                and module.removeprefix("smclient.local.") not in smclient.local.__all__
            ):
                offenders.append(f"{path.relative_to(CORE)}: {module}")
    assert offenders == []


def test_the_local_runtime_uses_only_public_names_of_the_core() -> None:
    import smclient

    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for module in _imports(path):
            if not module.startswith("smclient.") or module.startswith("smclient.local"):
                continue
            leaf = module.removeprefix("smclient.")
            if leaf not in smclient.__all__ and leaf != "testing":
                offenders.append(f"{path.relative_to(PACKAGE)}: {module}")
    assert offenders == []


def test_subpackages_import_only_lower_layers() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        own = _layer(".".join(path.relative_to(CORE.parent).with_suffix("").parts))
        for module in _imports(path):
            if not module.startswith("smclient.local.") or module == "smclient.local":
                continue
            target = _layer(module)
            if LAYERS.index(target) > LAYERS.index(own):
                offenders.append(f"{path.relative_to(PACKAGE)} ({own}) imports {module}")
    assert offenders == []


def test_every_module_sits_in_a_known_subpackage() -> None:
    folders = {p.parent.name for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE}
    # Another branch adds smclient/local/bidi/ (bidirectional streaming) on top of these.
    assert folders - {"bidi", "__pycache__"} <= set(LAYERS)


@pytest.mark.parametrize("name", ["smclient.local", "smclient._cli", "smclient.testing._plugin"])
def test_importing_does_not_fail_on_a_cold_interpreter(name: str) -> None:
    # A fresh interpreter catches import cycles a warm test process would hide.
    done = subprocess.run(
        [sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
