"""Griffe extension: render the reST bits of our docstrings as Markdown.

The docstrings are written for ``help()`` and IDEs in light reStructuredText
(``.. versionadded::``, ``.. note::`` and other admonitions, ``.. code-block::``,
``text::`` literal blocks, ``:class:`Name``` roles). mkdocstrings renders docstrings as
Markdown, so this turns those into admonitions, fenced blocks and cross-references. The
references are ``optional``: a role naming something that is not in the reference stays
plain code instead of failing the strict build.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_BLOCK = r"\n\n(?P<body>(?:(?P=indent)[ \t]+\S.*\n|[ \t]*\n)+)"
_CODE = re.compile(
    r"^(?P<indent>[ \t]*)\.\. code-block::[ \t]*(?P<lang>\S*)" + _BLOCK, re.MULTILINE
)
_LITERAL = re.compile(r"^(?P<indent>[ \t]*)(?P<text>\S.*?)::" + _BLOCK, re.MULTILINE)
_VERSION = re.compile(
    r"^(?P<indent>[ \t]*)\.\. (?P<kind>versionadded|versionchanged|deprecated)::"
    r"[ \t]*(?P<version>\S+)[ \t]*(?P<rest>.*)$",
    re.MULTILINE,
)
_ADMONITION = re.compile(
    r"^(?P<indent>[ \t]*)\.\. (?P<kind>note|warning|tip|important|caution|seealso)::"
    r"[ \t]*(?P<rest>.*)$",
    re.MULTILINE,
)
_ROLE = re.compile(r":(?:class|meth|func|attr|data|mod|exc|obj):`~?(?P<target>[^`]+)`")
_TITLES = {
    "versionadded": "Added in version",
    "versionchanged": "Changed in version",
    "deprecated": "Deprecated since version",
}


def _fence(indent: str, body: str, lang: str) -> str:
    lines = body.rstrip("\n").split("\n")
    width = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    code = [f"{indent}{line[width:]}".rstrip() for line in lines]
    return "\n".join([f"{indent}```{lang}", *code, f"{indent}```"]) + "\n\n"


def _code(match: re.Match[str]) -> str:
    return _fence(match["indent"], match["body"], match["lang"] or "python")


def _literal(match: re.Match[str]) -> str:
    # "text::" and an indented block: a literal block (always Python in our docstrings).
    text = match["text"].rstrip()
    return f"{match['indent']}{text}:\n\n" + _fence(match["indent"], match["body"], "python")


def _version(match: re.Match[str]) -> str:
    title = f"{_TITLES[match['kind']]} {match['version']}"
    rest = f"\n\n{match['indent']}    {match['rest']}" if match["rest"] else ""
    return f'{match["indent"]}!!! info "{title}"{rest}'


def _admonition(match: re.Match[str]) -> str:
    # The directive's body is already indented under it, as Markdown admonitions want.
    kind = {"seealso": "info", "important": "warning", "caution": "warning"}.get(
        match["kind"], match["kind"]
    )
    rest = f"\n\n{match['indent']}    {match['rest']}" if match["rest"] else ""
    return f"{match['indent']}!!! {kind}{rest}"


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring once it is loaded (see the module docstring)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is None:
            return
        owner = obj if obj.is_class or obj.is_module else obj.parent

        def role(match: re.Match[str]) -> str:
            target = match["target"].strip()
            title = None
            if target.endswith(">") and " <" in target:  # :meth:`Title <smclient.X.y>`
                title, _, target = target[:-1].rpartition(" <")
            target = target.lstrip("~")
            name = title or target.rsplit(".", 1)[-1]
            if target.startswith(".") and owner is not None:  # relative to the package
                package = owner.module if owner.module.is_package else owner.module.parent
                target = f"{package.path if package else ''}.{target.lstrip('.')}"
            elif "." not in target and owner is not None:
                if target in owner.members:
                    target = f"{owner.path}.{target}"
                else:
                    target = f"{owner.module.path}.{target}"
            return (
                f'<autoref identifier="{html.escape(target)}" optional>'
                f"<code>{html.escape(name)}</code></autoref>"
            )

        text = _CODE.sub(_code, docstring.value + "\n")
        text = _LITERAL.sub(_literal, text)
        text = _VERSION.sub(_version, text)
        text = _ADMONITION.sub(_admonition, text)
        docstring.value = _ROLE.sub(role, text).rstrip("\n")
