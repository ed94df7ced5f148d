"""Check what the built distributions hold (run by ``nox -s package`` after the build).

The wheel must hold ``smclient/py.typed`` (the package is typed), the demo's sample models
(``smclient/_demo_models/*``: ``python -m smclient demo`` loads them from the installed
package), the pytest plugin, and nothing from ``tests/`` or the docs; its metadata must
name the docs, changelog and issue tracker. The sdist must hold the sources, tests and
docs needed to rebuild and test it.

Usage: ``python tests/check_dist.py dist/smclient-X.tar.gz dist/smclient-X-py3-none-any.whl``
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wheel_problems(path: Path) -> list[str]:
    """What is wrong with the wheel at ``path`` (an empty list when nothing is)."""
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(wheel.read(meta_name).decode())
    problems = []
    if "smclient/py.typed" not in names:
        problems.append("smclient/py.typed is missing")
    shipped_models = sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "smclient/_demo_models").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    if not shipped_models:
        problems.append("the repository has no sample models under smclient/_demo_models")
    problems += [f"demo model file {m} is missing" for m in shipped_models if m not in names]
    if "smclient/testing/_plugin.py" not in names:
        problems.append("the pytest plugin smclient/testing/_plugin.py is missing")
    for name in names:
        top = name.split("/", 1)[0]
        if top in {"tests", "docs", "site"} or "/tests/" in name or name.endswith(".pyc"):
            problems.append(f"{name} should not be in the wheel")
        elif not (top == "smclient" or top.endswith((".dist-info", ".data"))):
            problems.append(f"{name} is outside the package")
    urls = {u.split(",", 1)[0].strip() for u in metadata.get_all("Project-URL") or []}
    for label in ("Documentation", "Changelog", "Issues"):
        if label not in urls:
            problems.append(f"Project-URL {label} is missing from the metadata")
    return problems


def sdist_problems(path: Path) -> list[str]:
    """What is wrong with the sdist at ``path``."""
    with tarfile.open(path) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    needed = ["pyproject.toml", "README.md", "CHANGELOG.md", "smclient/py.typed", "mkdocs.yml"]
    needed += ["tests/test_docs.py", "docs/index.md"]
    problems = [f"{name} is missing from the sdist" for name in needed if name not in names]
    problems += [f"{n} should not be in the sdist" for n in names if n.startswith("site/")]
    return problems


def main(argv: list[str]) -> int:
    problems = []
    checked = 0
    for arg in argv:
        path = Path(arg)
        if path.name.endswith(".whl"):
            found = wheel_problems(path)
        elif path.name.endswith(".tar.gz"):
            found = sdist_problems(path)
        else:
            found = [f"not a wheel or an sdist: {path}"]
        checked += 1
        problems += [f"{path.name}: {problem}" for problem in found]
        print(f"{'FAILED' if found else 'ok    '} {path.name}")
    if checked < 2:
        problems.append("expected an sdist and a wheel")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
