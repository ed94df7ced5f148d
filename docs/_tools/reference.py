"""MkDocs hook: the API reference, generated at build time from the public names.

One page per public namespace (``smclient``, ``smclient.local``, ``smclient.testing``),
with one section per name in that namespace's ``__all__``, grouped by kind. Nothing here
lists names by hand: a name added to an ``__all__`` appears on the next build, and
:func:`on_post_build` fails the (strict) build when a public name has no anchor in the
rendered reference. ``tests/test_docs.py`` imports this module to check the same list.

The changelog page is made here too, from the repository's ``CHANGELOG.md``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: (namespace, page under docs/, title, one-line description)
NAMESPACES = (
    (
        "smclient",
        "reference/smclient.md",
        "smclient",
        "The client: endpoints, results, "
        "retries, errors, sessions, streaming, async inference and endpoint creation.",
    ),
    (
        "smclient.local",
        "reference/local.md",
        "smclient.local",
        "The local endpoint: a SageMaker runtime on loopback for notebooks, demos and tests.",
    ),
    (
        "smclient.testing",
        "reference/testing.md",
        "smclient.testing",
        "Helpers for tests of code that uses smclient.",
    ),
    (
        "smclient.notifications",
        "reference/notifications.md",
        "smclient.notifications",
        "Async-inference notifications: an SQS queue subscribed to the SNS topics.",
    ),
)

#: Section titles, in page order.
KINDS = ("Classes", "Errors", "Functions", "Constants")

log = logging.getLogger("mkdocs.plugins.smclient_reference")


@dataclass(frozen=True)
class PublicName:
    """One public name: where users import it from, and what it is."""

    namespace: str
    name: str
    kind: str
    obj: Any

    @property
    def path(self) -> str:
        return f"{self.namespace}.{self.name}"


def kind_of(obj: Any) -> str:
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return "Errors"
    if isinstance(obj, type):
        return "Classes"
    if callable(obj) and (inspect.isfunction(obj) or inspect.isbuiltin(obj)):
        return "Functions"
    if callable(obj) and hasattr(obj, "__wrapped__"):  # contextmanager-decorated
        return "Functions"
    return "Constants"


def public_names(namespace: str) -> list[PublicName]:
    """Every name in ``namespace.__all__`` (importing lazy ones), in ``__all__`` order."""
    module = importlib.import_module(namespace)
    return [
        PublicName(namespace, name, kind_of(getattr(module, name)), getattr(module, name))
        for name in module.__all__
    ]


def reference_page(namespace: str, title: str, description: str) -> str:
    """The Markdown of one namespace's reference page (mkdocstrings directives)."""
    names = public_names(namespace)
    lines = [
        f"# `{title}`",
        "",
        description,
        "",
        "Generated from the docstrings of every name in "
        f"`{namespace}.__all__`; import each as `from {namespace} import Name`.",
        "",
    ]
    for kind in KINDS:
        group = [n for n in names if n.kind == kind]
        if not group:
            continue
        lines += [f"## {kind}", ""]
        for item in group:
            lines += [f"::: {item.path}", "    options:", "      heading_level: 3", ""]
            if kind == "Constants":
                cls = type(item.obj)
                owner = next((n for n in names if n.obj is cls), None)
                target = f"[`{cls.__name__}`][{owner.path}]" if owner else f"`{cls.__name__}`"
                lines += [f"An instance of {target}.", ""]
    return "\n".join(lines)


def index_page() -> str:
    lines = [
        "# API reference",
        "",
        "Every public name, with its signature, defaults and docstring, generated from the code "
        "at build time (so it cannot drift from it). Anything not listed here is private.",
        "",
        "| namespace | what |",
        "|---|---|",
    ]
    for namespace, page, _title, description in NAMESPACES:
        lines.append(f"| [`{namespace}`]({Path(page).name}) | {description} |")
    lines.append("")
    for namespace, *_ in NAMESPACES:
        lines += [f"## `{namespace}`", ""]
        for kind in KINDS:
            group = [n for n in public_names(namespace) if n.kind == kind]
            if group:
                links = ", ".join(f"[`{n.name}`][{n.path}]" for n in group)
                lines += [f"**{kind}**: {links}", ""]
    return "\n".join(lines)


REPOSITORY = "https://github.com/smclient/smclient/blob/main/"
_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|#)([^)\s]+)\)")


def changelog_page() -> str:
    """CHANGELOG.md, its links made to work from the site's root: ``docs/x.md`` becomes
    ``x.md``, any other file of the repository a link to it on GitHub."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")

    def relink(match: re.Match[str]) -> str:
        target = match.group(1)
        if target.startswith("docs/"):
            return f"]({target.removeprefix('docs/')})"
        return f"]({REPOSITORY}{target})"

    return _LINK.sub(relink, text)


def generated_pages() -> dict[str, str]:
    """``{path under docs/: Markdown}`` of every page this hook adds to the site."""
    pages = {"reference/index.md": index_page(), "changelog.md": changelog_page()}
    for namespace, page, title, description in NAMESPACES:
        pages[page] = reference_page(namespace, title, description)
    return pages


# --- MkDocs events -------------------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for src_uri, content in generated_pages().items():
        files.append(File.generated(config, src_uri, content=content))
    return files


def on_post_build(config: Any) -> None:
    site = Path(config["site_dir"])
    for namespace, page, _title, _description in NAMESPACES:
        html_path = site / Path(page).with_suffix("") / "index.html"
        html = html_path.read_text(encoding="utf-8") if html_path.exists() else ""
        for item in public_names(namespace):
            if f'id="{item.path}"' not in html:
                log.warning("public name %s has no entry in the API reference", item.path)
