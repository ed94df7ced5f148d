"""MkDocs hook: links from a page to repository files outside docs/ point at GitHub.

A page may link ``../tests/test_docs.py`` or ``../CHANGELOG.md``: right when the page is read
on GitHub, broken on the site (which holds only docs/). Such links are rewritten, at build
time, to the file on GitHub; links to files that do not exist are left alone, so the
strict build still reports them.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

REPOSITORY = "https://github.com/smclient/smclient/blob/main/"
_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|#|/)([^)\s#]+)(#[^)\s]*)?\)")


def outside_links(markdown: str, page: str, docs_dir: Path) -> str:
    """``markdown`` of the page at ``page`` (a path under docs/) with links leaving docs/
    made absolute."""
    root = docs_dir.resolve().parent

    def relink(match: re.Match[str]) -> str:
        target, anchor = match.group(1), match.group(2) or ""
        joined = posixpath.normpath(posixpath.join("docs", posixpath.dirname(page), target))
        if joined.startswith(("docs/", "../")) or joined == "..":
            return match.group(0)
        if not (root / joined).exists():
            return match.group(0)
        return f"]({REPOSITORY}{joined}{anchor})"

    return _LINK.sub(relink, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return outside_links(markdown, page.file.src_uri, Path(config["docs_dir"]))
