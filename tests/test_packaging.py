"""The distribution check (tests/check_dist.py, run by ``nox -s package`` on the real build)
catches a bad wheel, and the project metadata points at the docs, changelog and issues."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("_check_dist", ROOT / "tests/check_dist.py")
assert _spec is not None
assert _spec.loader is not None
check_dist = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = check_dist
_spec.loader.exec_module(check_dist)

METADATA = """Metadata-Version: 2.4
Name: smclient
Version: 0.1.0
Project-URL: Documentation, https://smclient.github.io/smclient/
Project-URL: Changelog, https://smclient.github.io/smclient/changelog/
Project-URL: Issues, https://github.com/smclient/smclient/issues
"""
MODELS = sorted(
    p.relative_to(ROOT).as_posix()
    for p in (ROOT / "smclient/_demo_models").rglob("*")
    if p.is_file() and "__pycache__" not in p.parts
)


def _wheel(tmp_path: Path, names: list[str], metadata: str = METADATA) -> Path:
    path = tmp_path / "smclient-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name in names:
            wheel.writestr(name, b"")
        wheel.writestr("smclient-0.1.0.dist-info/METADATA", metadata)
    return path


GOOD = ["smclient/__init__.py", "smclient/py.typed", "smclient/testing/_plugin.py", *MODELS]


def test_a_complete_wheel_passes(tmp_path: Path) -> None:
    assert MODELS  # the demo's sample models exist in the repository
    assert check_dist.wheel_problems(_wheel(tmp_path, GOOD)) == []


def test_missing_py_typed_and_models_and_tests_inside_are_reported(tmp_path: Path) -> None:
    names = [n for n in GOOD if n != "smclient/py.typed" and n != MODELS[0]]
    names += ["tests/test_docs.py", "smclient/tests/conftest.py"]
    problems = check_dist.wheel_problems(_wheel(tmp_path, names))
    assert "smclient/py.typed is missing" in problems
    assert f"demo model file {MODELS[0]} is missing" in problems
    assert "tests/test_docs.py should not be in the wheel" in problems
    assert "smclient/tests/conftest.py should not be in the wheel" in problems


def test_missing_project_urls_are_reported(tmp_path: Path) -> None:
    metadata = METADATA.replace("Project-URL: Changelog", "Project-URL: Other")
    problems = check_dist.wheel_problems(_wheel(tmp_path, GOOD, metadata))
    assert problems == ["Project-URL Changelog is missing from the metadata"]


def test_project_urls_name_docs_changelog_and_issues() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert {"Documentation", "Changelog", "Issues"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
