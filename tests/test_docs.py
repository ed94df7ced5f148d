"""The docs stay true: every Python block in README.md and docs/ compiles, every relative
link points at a file that exists, every public name has a docstring and an entry in the
generated API reference, and the notebooks are stored without outputs.

The site itself is built (strictly) and the notebooks run by ``nox -s docs``."""

from __future__ import annotations

import functools
import importlib.util
import inspect
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [
    ROOT / "README.md",
    ROOT / "CHANGELOG.md",
    *sorted(p for p in DOCS.rglob("*.md") if "_tools" not in p.parts),
]
NOTEBOOKS = sorted((DOCS / "notebooks").glob("*.ipynb"))
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _reference() -> ModuleType:
    """docs/_tools/reference.py: the MkDocs hook that generates the reference pages."""
    spec = importlib.util.spec_from_file_location(
        "_smclient_reference", DOCS / "_tools/reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while building classes
    spec.loader.exec_module(module)
    return module


REFERENCE = _reference()
PUBLIC = [item for ns, *_ in REFERENCE.NAMESPACES for item in REFERENCE.public_names(ns)]


GENERATED = set(REFERENCE.generated_pages())  # pages the site build makes (reference, changelog)


def _page_id(page: Path) -> str:
    return str(page.relative_to(DOCS)) if page.is_relative_to(DOCS) else page.name


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_python_blocks_compile(page: Path) -> None:
    for number, block in enumerate(BLOCK.findall(page.read_text())):
        compile(block, f"{page.name}[block {number}]", "exec")


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_relative_links_resolve(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        path = (page.parent / target).resolve()
        generated = path.is_relative_to(DOCS) and str(path.relative_to(DOCS)) in GENERATED
        assert path.exists() or generated, f"{page.name} links to missing {target}"


def test_readme_quickstart_is_short_and_names_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "python -m smclient demo" in text
    assert "python -m pytest" in text


# --- The API reference --------------------------------------------------------------------


def test_the_reference_covers_the_public_namespaces() -> None:
    namespaces = {ns for ns, *_ in REFERENCE.NAMESPACES}
    assert {"smclient", "smclient.local", "smclient.testing"} <= namespaces
    # Any other public (not underscored) module of the package with an __all__ is too.
    import pkgutil

    import smclient

    for info in pkgutil.iter_modules(smclient.__path__, "smclient."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        module = importlib.import_module(info.name)
        if hasattr(module, "__all__"):
            assert info.name in namespaces, f"{info.name} is public but not in the reference"


@pytest.mark.parametrize("item", PUBLIC, ids=lambda item: item.path)
def test_every_public_name_is_in_the_generated_reference(item: Any) -> None:
    pages = REFERENCE.generated_pages()
    page = next(page for ns, page, *_ in REFERENCE.NAMESPACES if ns == item.namespace)
    assert f"::: {item.path}\n" in pages[page]
    assert f"][{item.path}]" in pages["reference/index.md"]


def _own_docstring(obj: Any) -> str | None:
    if isinstance(obj, type):
        return obj.__dict__.get("__doc__")  # not one inherited from a base class
    if callable(obj):
        return getattr(obj, "__doc__", None)
    return type(obj).__dict__.get("__doc__")  # a constant: its class says what it is


@pytest.mark.parametrize("item", PUBLIC, ids=lambda item: item.path)
def test_every_public_name_has_a_docstring(item: Any) -> None:
    doc = _own_docstring(item.obj)
    assert (doc or "").strip(), (
        f"{item.path} has no docstring: say what it is, its units and defaults, and "
        "'.. versionadded:: X.Y.Z'"
    )


@pytest.mark.parametrize("item", PUBLIC, ids=lambda item: item.path)
def test_every_public_name_says_when_it_was_added(item: Any) -> None:
    doc = _own_docstring(item.obj) or ""
    assert re.search(r"\.\. versionadded:: \d+\.\d+\.\d+", doc), (
        f"{item.path}: end its docstring with '.. versionadded:: X.Y.Z' (0.2.0 for new names)"
    )


def _own_class(cls: type) -> bool:
    """Whether ``cls`` is ours (defined in smclient), not a builtin, stdlib or attrs base."""
    return (getattr(cls, "__module__", None) or "").partition(".")[0] == "smclient"


def _member_doc(raw: Any) -> str | None:
    if isinstance(raw, classmethod | staticmethod):
        raw = raw.__func__
    return getattr(raw, "__doc__", None)  # a property's is its getter's


def _public_members() -> list[tuple[str, type, str]]:
    """(path, class, name) of every public method, property, classmethod and staticmethod
    of every public class: names not starting with ``_`` (so no dunders), defined by a class
    of ours; members that only builtins, ``Exception`` or other libraries define are theirs
    to document and are left out (``ModelError.add_note``, an enum's ``name``...)."""
    members = []
    seen: set[type] = set()
    for item in PUBLIC:
        cls = item.obj
        if not isinstance(cls, type) or cls in seen:
            continue
        seen.add(cls)
        for name in dir(cls):
            if name.startswith("_"):
                continue
            owner = next((k for k in cls.__mro__ if name in k.__dict__), None)
            if owner is None or not _own_class(owner):
                continue
            raw = owner.__dict__[name]
            kinds = (property, classmethod, staticmethod, functools.cached_property)
            if inspect.isfunction(raw) or isinstance(raw, kinds):
                members.append((f"{item.path}.{name}", cls, name))
    return members


MEMBERS = _public_members()


def _member_docstring(cls: type, name: str) -> str | None:
    # Not inspect.getdoc: it walks the whole MRO and would accept the docstring of a
    # builtin/stdlib method we override (an undocumented ``get`` over ``dict.get``), and
    # for properties and classmethods it depends on the Python version. Here a docstring
    # counts when the member has its own, or inherits it from a base class of ours that
    # defines the same member (the reference shows the base's text then).
    for klass in cls.__mro__:
        if name in klass.__dict__ and _own_class(klass):
            doc = _member_doc(klass.__dict__[name])
            if doc and doc.strip():
                return doc
    return None


def test_public_members_are_collected() -> None:
    paths = {path for path, *_ in MEMBERS}
    assert {"smclient.Endpoint.invoke", "smclient.testing.Reply.ok"} <= paths
    assert {"smclient.Codec.encode", "smclient.ResponseStream.bytes_received"} <= paths
    assert not any(p.rsplit(".", 1)[-1].startswith("_") for p in paths)
    assert "smclient.ModelError.add_note" not in paths  # Exception's, not ours


def test_a_member_without_a_docstring_is_found() -> None:
    class Base:
        def documented(self) -> None:
            """Says what it does."""

    class Child(Base, dict[str, int]):
        def documented(self) -> None:  # inherits Base's docstring: counts
            pass

        def get(self, key: str, default: Any = None) -> Any:  # dict.get's does not
            pass

    for cls in (Base, Child):
        cls.__module__ = "smclient._example"
    assert _member_docstring(Child, "documented") == "Says what it does."
    assert _member_docstring(Child, "get") is None


@pytest.mark.parametrize(("path", "cls", "name"), MEMBERS, ids=[m[0] for m in MEMBERS])
def test_every_public_member_has_a_docstring(path: str, cls: type, name: str) -> None:
    assert (_member_docstring(cls, name) or "").strip(), (
        f"{path} has no docstring: say what it does or returns, with units and defaults"
    )


def test_reference_kinds_sort_errors_from_classes() -> None:
    kinds = {item.path: item.kind for item in PUBLIC}
    assert kinds["smclient.Endpoint"] == "Classes"
    assert kinds["smclient.ModelError"] == "Errors"
    assert kinds["smclient.wait"] == "Functions"
    assert kinds["smclient.JSON"] == "Constants"
    assert kinds["smclient.testing.no_retry_waits"] == "Functions"


# --- Notebooks ----------------------------------------------------------------------------


def test_there_are_notebooks() -> None:
    names = {path.name for path in NOTEBOOKS}
    assert {"quickstart.ipynb", "multi-model.ipynb", "chat-session.ipynb"} <= names
    assert "async-inference.ipynb" in names


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs(notebook: Path) -> None:
    cells = json.loads(notebook.read_text())["cells"]
    for number, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{notebook.name} cell {number} has outputs"
            assert cell["execution_count"] is None, f"{notebook.name} cell {number} ran"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_in_the_site_nav(notebook: Path) -> None:
    assert f"notebooks/{notebook.name}" in (ROOT / "mkdocs.yml").read_text()


# --- The docstring conversion (docs/_tools/griffe_rst.py) ---------------------------------------


def _griffe_rst() -> ModuleType:
    pytest.importorskip("griffe", reason="griffe comes with the docs extra (mkdocstrings)")
    spec = importlib.util.spec_from_file_location("_griffe_rst", DOCS / "_tools/griffe_rst.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _converted(text: str) -> str:
    import griffe

    ext = _griffe_rst()
    owner = griffe.Class("Thing", parent=griffe.Module("smclient"))
    owner.set_member("close", griffe.Function("close", parent=owner))
    owner.docstring = griffe.Docstring(text, parent=owner)
    ext.RstToMarkdown().on_object(obj=owner)
    assert owner.docstring is not None
    return owner.docstring.value


def test_rst_directives_become_markdown() -> None:
    text = _converted(
        "Do it::\n\n    with a:\n        b()\n\n.. code-block:: console\n\n    $ ls\n\n"
        ".. note::\n    Careful.\n\n.. versionadded:: 0.2.0"
    )
    assert "Do it:\n\n```python\nwith a:\n    b()\n```" in text
    assert "```console\n$ ls\n```" in text
    assert "!!! note\n    Careful." in text
    assert text.endswith('!!! info "Added in version 0.2.0"')


def test_roles_become_optional_cross_references() -> None:
    text = _converted(
        "See :meth:`close`, :class:`~smclient.Endpoint`, :func:`wait` and "
        ":meth:`Endpoint.invoke <smclient.Endpoint.invoke>`."
    )
    assert '<autoref identifier="smclient.Thing.close" optional><code>close</code>' in text
    assert '<autoref identifier="smclient.Endpoint" optional><code>Endpoint</code>' in text
    assert '<autoref identifier="smclient.wait" optional><code>wait</code>' in text
    invoke = '<autoref identifier="smclient.Endpoint.invoke" optional><code>Endpoint.invoke</code>'
    assert invoke in text


# --- The nav (docs/_tools/nav.py files pages left out of mkdocs.yml) ---------------------------


def _nav_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_smclient_nav", DOCS / "_tools/nav.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nav_pages() -> set[str]:
    # mkdocs.yml's nav entries look like "  - Title: page.md" or "  - page.md".
    text = (ROOT / "mkdocs.yml").read_text()
    return set(re.findall(r"^\s*-\s+(?:[^:\n]+:\s+)?([\w./-]+\.(?:md|ipynb))\s*$", text, re.M))


def test_nav_names_only_pages_that_exist_or_are_generated() -> None:
    for page in _nav_pages():
        assert (DOCS / page).exists() or page in GENERATED, f"mkdocs.yml names missing {page}"


def test_unlisted_pages_are_filed_under_their_section(tmp_path: Path) -> None:
    nav = _nav_hook()
    (tmp_path / "howto").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "index.md").write_text("# Home\n")
    (tmp_path / "transport.md").write_text("Intro\n\n# Choosing a `transport`\n")
    (tmp_path / "howto" / "spark.md").write_text("no heading\n")
    (tmp_path / "notebooks" / "duplex.ipynb").write_text(
        json.dumps({"cells": [{"cell_type": "markdown", "source": ["# Duplex\n", "text"]}]})
    )
    missing = nav.unlisted(tmp_path, [{"Home": "index.md"}, {"Guides": []}])
    assert missing == {
        "Guides": [("Choosing a transport", "transport.md")],
        "How-to": [("Spark", "howto/spark.md")],
        "Notebooks": [("Duplex", "notebooks/duplex.ipynb")],
    }


def test_the_build_fails_when_a_public_name_has_no_anchor(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # on_post_build reads the rendered pages; a warning fails `mkdocs build --strict`.
    for namespace, page, *_ in REFERENCE.NAMESPACES:
        html = tmp_path / Path(page).with_suffix("") / "index.html"
        html.parent.mkdir(parents=True)
        ids = [item.path for item in REFERENCE.public_names(namespace)]
        if namespace == "smclient":
            ids.remove("smclient.Endpoint")
        html.write_text("".join(f'<h3 id="{i}">{i}</h3>' for i in ids))
    with caplog.at_level("WARNING"):
        REFERENCE.on_post_build({"site_dir": str(tmp_path)})
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["public name smclient.Endpoint has no entry in the API reference"]


def test_changelog_links_work_from_the_site(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "CHANGELOG.md").write_text(
        "- See [errors](docs/errors.md#tree), [the README](README.md), "
        "[keep a changelog](https://keepachangelog.com/) and [above](#unreleased).\n"
    )
    monkeypatch.setattr(REFERENCE, "ROOT", tmp_path)
    assert REFERENCE.changelog_page() == (
        "- See [errors](errors.md#tree), "
        "[the README](https://github.com/smclient/smclient/blob/main/README.md), "
        "[keep a changelog](https://keepachangelog.com/) and [above](#unreleased).\n"
    )


def test_links_leaving_docs_point_at_github() -> None:
    spec = importlib.util.spec_from_file_location("_smclient_links", DOCS / "_tools/links.py")
    assert spec is not None
    assert spec.loader is not None
    links = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(links)
    text = (
        "[a](../tests/test_docs.py) [b](../../CHANGELOG.md#unreleased) [c](retries.md) "
        "[d](../missing.py) [e](https://x.org/a.md) [f](#here)"
    )
    assert links.outside_links(text, "howto/page.md", DOCS) == (
        "[a](../tests/test_docs.py) "  # from docs/howto/ that is docs/tests/...: left alone
        "[b](https://github.com/smclient/smclient/blob/main/CHANGELOG.md#unreleased) "
        "[c](retries.md) [d](../missing.py) [e](https://x.org/a.md) [f](#here)"
    )
    assert links.outside_links("[t](../tests/test_docs.py)", "index.md", DOCS) == (
        "[t](https://github.com/smclient/smclient/blob/main/tests/test_docs.py)"
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_use_only_public_names(notebook: Path) -> None:
    # Users copy notebook cells: nothing private (smclient._x, smclient.local._x, ...).
    cells = json.loads(notebook.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "smclient" in code
    private = re.findall(r"\bsmclient(?:\.\w+)*\._\w+|from \.+_\w+", code)
    assert private == [], f"{notebook.name} uses private names: {private}"
